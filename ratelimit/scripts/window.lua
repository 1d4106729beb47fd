-- window.lua: sliding-window counter for one key under one or more limits,
-- all-or-nothing, in integer microseconds from Redis TIME.
--
-- The estimate for limit i is prev × (P - elapsed) / P + cur, where cur and
-- prev count the events of the current and the previous fixed window of
-- length P, and elapsed is the time since the current window started. A
-- request of cost n is allowed when estimate + n <= Rate for every limit.
-- All comparisons are multiplied by P, so they stay integers (Rate × P < 2^53,
-- checked by the caller).
--
-- resend.lua is prepended: it sets ridttl (from ARGV[3]) and refuses a
-- re-sent copy when request IDs are off.
--
-- KEYS[1]  state hash "<prefix>{<key>}:sw"; field <id_i>:<window index> holds a
--          window's count.
-- KEYS[2]  request-id key (see gcra.lua); passed only when ARGV[3] > 0.
-- ARGV[1]  n: cost (>= 0); 0 records nothing.
-- ARGV[2]  m: most events to take (>= n), for token batching.
-- ARGV[3]  request-id TTL in ms, 0 = off; 'r'-prefixed on a re-sent copy
--          (see gcra.lua).
-- ARGV[4]  L: number of limits.
-- ARGV[5+4(i-1) .. 8+4(i-1)] for limit i: id, R (Rate), P (Period in µs),
--          B (Burst, unused by this algorithm).
--
-- Returns "allowed remaining retry_us reset_us limit_index taken" like
-- gcra.lua.
--
-- Tests (each on a single node and on a Cluster, with request IDs off and
-- on): one and several limits, allowed, denied (retry in this window and in
-- the next), never (n > rate), peek (n = 0), batch (m > n):
-- TestScriptBranches/…/alg=sliding-window/… (the retry in this window:
-- …/slide); the request-ID reply returned
-- to a re-sent copy and the refusal in resend.lua:
-- TestScriptRequestIDBranches/…/alg=sliding-window/…; sliding behaviour:
-- TestRedisSlidingWindow, TestRedisSlidingWindowSlides.
if ridttl > 0 then
  local prev = redis.call('GET', KEYS[2])
  if prev then return prev end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local L = tonumber(ARGV[4])

local fields = {}
local IDX, EL = {}, {}
for i = 1, L do
  local b = 5 + 4 * (i - 1)
  local id, p = ARGV[b], tonumber(ARGV[b + 2])
  local idx = math.floor(now / p)
  IDX[i], EL[i] = idx, now - idx * p
  fields[2 * i - 1] = id .. ':' .. idx
  fields[2 * i] = id .. ':' .. (idx - 1)
end
local vals = redis.call('HMGET', KEYS[1], unpack(fields))

local R, P, CUR, PREV, A = {}, {}, {}, {}, {}
local avail, tight, never = -1, 1, false
for i = 1, L do
  local b = 5 + 4 * (i - 1)
  local r, p = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  R[i], P[i] = r, p
  local cur = tonumber(vals[2 * i - 1]) or 0
  local prev = tonumber(vals[2 * i]) or 0
  CUR[i], PREV[i] = cur, prev
  -- free capacity × P = R×P - prev×(P-elapsed) - cur×P
  local free = r * p - prev * (p - EL[i]) - cur * p
  local a = 0
  if free > 0 then
    a = math.floor(free / p)
    if a * p > free then a = a - 1 end
  end
  A[i] = a
  if avail < 0 or a < avail then avail, tight = a, i end
  if n > r then never = true end
end

local allowed, take = 0, 0
if n == 0 then
  allowed = 1
elseif not never and avail >= n then
  allowed = 1
  take = math.min(m, avail)
end

local retry, reset = 0, 0
if take > 0 then
  local ttl = 0
  for i = 1, L do
    local b = 5 + 4 * (i - 1)
    CUR[i] = CUR[i] + take
    redis.call('HINCRBY', KEYS[1], fields[2 * i - 1], take)
    redis.call('HDEL', KEYS[1], ARGV[b] .. ':' .. (IDX[i] - 2))
    -- the current window counts until the end of the next one
    local live = 2 * P[i] - EL[i]
    if live > ttl then ttl = live end
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000) + 1)
end

for i = 1, L do
  local rs = 0
  if CUR[i] > 0 then rs = 2 * P[i] - EL[i]
  elseif PREV[i] > 0 then rs = P[i] - EL[i] end
  if rs > reset then reset = rs end
end

if allowed == 0 then
  if never then
    retry = -1
    for i = 1, L do
      if n > R[i] then tight = i; break end
    end
  else
    tight = 1
    for i = 1, L do
      if A[i] < n then
        local r, p, cur, prev, el = R[i], P[i], CUR[i], PREV[i], EL[i]
        local w
        local room = r - cur - n
        -- in this window: prev × (P - e) <= room × P
        if room >= 0 and prev > 0 then
          local e = p - math.floor(room * p / prev)
          if e < p then w = e - el end
        end
        if not w then
          -- next window: cur becomes prev; cur × (P - e) <= (R - n) × P
          local e = 0
          if cur > 0 then
            e = p - math.floor((r - n) * p / cur)
            if e < 0 then e = 0 end
          end
          w = p - el + e
        end
        if w < 1 then w = 1 end
        if w > retry then retry, tight = w, i end
      end
    end
  end
end

local remaining = avail - take
if remaining < 0 then remaining = 0 end
local out = string.format('%d %d %d %d %d %d', allowed, remaining, retry, reset, tight - 1, take)
if ridttl > 0 and take > 0 then
  redis.call('SET', KEYS[2], out, 'PX', ridttl)
end
return out
