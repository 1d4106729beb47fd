-- gcra.lua: GCRA for one key under one or more limits, all-or-nothing, in
-- integer microseconds from Redis TIME.
--
-- resend.lua is prepended: it sets ridttl (from ARGV[3]) and refuses a
-- re-sent copy when request IDs are off.
--
-- KEYS[1]  state "<prefix>{<key>}": a string of one "q:r" pair per limit,
--          space-separated; limit i's theoretical arrival time (TAT) is
--          q + r/R µs. Missing pairs (a new key, or a limit added in a
--          deploy) count as "no debt".
-- KEYS[2]  request-id key "<prefix>{<key>}:rid:<id>" (same slot); passed only
--          when ARGV[3] > 0.
-- ARGV[1]  n: cost (>= 0). 0 records nothing and reports the state.
-- ARGV[2]  m: most events to take (>= n): token batching takes up to m when
--          at least n fit; otherwise m = n.
-- ARGV[3]  request-id TTL in ms, prefixed with 'r' when go-redis re-sent
--          the command (a retry after a timeout or a broken connection). When
--          > 0, the reply to an allowed request is stored under KEYS[2], and a
--          copy of the same request returns that reply and counts nothing.
--          When 0, a re-sent copy is refused with an OUTRIGGER_RESENT error
--          (the first copy may have run), so nothing counts twice.
-- ARGV[4]  L: number of limits.
-- ARGV[5+4(i-1) .. 8+4(i-1)] for limit i: id (unused here), R (Rate),
--          P (Period in µs), B (Burst). U = (TAT - now) × R is the used quota
--          in 1/R µs units; one event costs P and the bucket holds B × P
--          (< 2^53, checked by the caller), so all arithmetic is exact.
--
-- Returns the string "allowed remaining retry_us reset_us limit_index taken"
-- (limit_index is 0-based: the limit that denied, or the tightest one).
--
-- Tests (each on a single node and on a Cluster; TestScriptBranches and
-- TestScriptRequestIDBranches in scripts_test.go, with request IDs off and on):
--   one limit, the fast path: allowed, denied, never (n > burst), peek
--     (n = 0), batch (m > n)       TestScriptBranches/…/limits=1/…
--   several limits: the same five  TestScriptBranches/…/limits=2/…
--   finish: request-ID reply stored and returned to a re-sent copy, a denied
--     request's copy decided again  TestScriptRequestIDBranches
--   resend.lua: a re-sent copy refused without request IDs
--                                    TestScriptRequestIDBranches,
--                                    TestRetryCountsOnce(Topologies)
--   all of them, across 3 replicas   TestMultiAcrossReplicas, TestContract
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local L = tonumber(ARGV[4])

local state = redis.call('GET', KEYS[1])

-- the tail: request-id bookkeeping, state write, reply
local function finish(out, take, stored, reset)
  if ridttl > 0 then
    if take > 0 then
      -- first copy: store the reply; a later copy gets the stored reply
      -- back and writes nothing
      local prev = redis.call('SET', KEYS[2], out, 'NX', 'PX', ridttl, 'GET')
      if prev then return prev end
    else
      local prev = redis.call('GET', KEYS[2])
      if prev then return prev end
    end
  end
  if take > 0 then
    -- the state is worth nothing once every TAT is in the past
    redis.call('SET', KEYS[1], stored, 'PX', math.ceil(reset / 1000) + 1)
  end
  return out
end

if L == 1 then
  -- one limit: the same computation without tables
  local r, p, burst = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local tol = burst * p
  local u = 0
  if state then
    local c = string.find(state, ':', 1, true)
    if c then
      local tq = tonumber(string.sub(state, 1, c - 1))
      local e = string.find(state, ' ', c + 1, true)
      local tr = tonumber(string.sub(state, c + 1, (e or 0) - 1))
      if tq and tr and tq >= now then u = (tq - now) * r + tr end
    end
  end
  local a = 0
  if u < tol then
    a = math.floor((tol - u) / p)
    if a * p > tol - u then a = a - 1 end
  end
  local allowed, take, retry = 0, 0, 0
  if n == 0 then
    allowed = 1
  elseif n <= burst and a >= n then
    allowed = 1
    take = math.min(m, a)
  elseif n > burst then
    retry = -1
  else
    retry = math.ceil((u + n * p - tol) / r)
  end
  local stored
  if take > 0 then
    u = u + take * p
    local q = math.floor(u / r)
    if q * r > u then q = q - 1 elseif (q + 1) * r <= u then q = q + 1 end
    stored = string.format('%d:%d', now + q, u - q * r)
  end
  local reset = math.ceil(u / r)
  local out = string.format('%d %d %d %d 0 %d', allowed, a - take, retry, reset, take)
  return finish(out, take, stored, reset)
end

local TQ, TR = {}, {}
if state then
  local i = 1
  for q, r in string.gmatch(state, '(%d+):(%d+)') do
    TQ[i], TR[i] = tonumber(q), tonumber(r)
    i = i + 1
  end
end

local R, P, TOL, U, B = {}, {}, {}, {}, {}
local avail, tight = -1, 1
local never = false
for i = 1, L do
  local b = 5 + 4 * (i - 1)
  local r = tonumber(ARGV[b + 1])
  local p = tonumber(ARGV[b + 2])
  local burst = tonumber(ARGV[b + 3])
  R[i], P[i], TOL[i], B[i] = r, p, burst * p, burst
  local u = 0
  local tq = TQ[i]
  if tq and tq >= now then u = (tq - now) * r + TR[i] end
  U[i] = u
  local a = 0
  if u < TOL[i] then
    a = math.floor((TOL[i] - u) / p)
    -- correct a rounding of the division up to the next integer
    if a * p > TOL[i] - u then a = a - 1 end
  end
  if avail < 0 or a < avail then avail, tight = a, i end
  if n > burst then never = true end
end

local allowed, take = 0, 0
if n == 0 then
  allowed = 1
elseif not never and avail >= n then
  allowed = 1
  take = math.min(m, avail)
end

local retry, reset = 0, 0
local parts
if take > 0 then
  parts = {}
  for i = 1, L do
    local u = U[i] + take * P[i]
    local q = math.floor(u / R[i])
    if q * R[i] > u then q = q - 1 elseif (q + 1) * R[i] <= u then q = q + 1 end
    parts[i] = string.format('%d:%d', now + q, u - q * R[i])
    local rs = math.ceil(u / R[i])
    if rs > reset then reset = rs end
  end
else
  for i = 1, L do
    local rs = math.ceil(U[i] / R[i])
    if rs > reset then reset = rs end
  end
  if allowed == 0 then
    if never then
      retry = -1
      for i = 1, L do
        if n > B[i] then tight = i; break end
      end
    else
      tight = 1
      for i = 1, L do
        local need = U[i] + n * P[i] - TOL[i]
        if need > 0 then
          local w = math.ceil(need / R[i])
          if w > retry then retry, tight = w, i end
        end
      end
    end
  end
end

local remaining = avail - take
if remaining < 0 then remaining = 0 end
local out = string.format('%d %d %d %d %d %d', allowed, remaining, retry, reset, tight - 1, take)
local stored
if take > 0 then stored = table.concat(parts, ' ') end
return finish(out, take, stored, reset)
