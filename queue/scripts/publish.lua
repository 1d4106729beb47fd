-- publish.lua: add a batch of messages, exactly once even when the client
-- re-sends the call (go-redis retries a command whose reply timed out).
--
-- KEYS[1]   stream      the queue's stream
-- KEYS[2]   delayed     sorted set of delayed message IDs, scored by due time (unix ms)
-- KEYS[3]   payloads    hash: delayed message ID -> cmsgpack-packed entry fields
-- KEYS[4]   callkey     remembers this call's outcome for the retry window
-- KEYS[5..] per-message keys: "id" keys of messages published WithID and
--           dedup keys, referenced by index below; then, with the metrics
--           TTL argument, the metrics hash as the last key, KEYS[#KEYS]
-- ARGV[1]   retry window  ms: how long KEYS[4] and the id keys live
-- ARGV[2]   max backlog   XLEN + ZCARD (integer), 0 for unbounded
-- ARGV[3]   messages      how many (integer >= 1); minus how many in the
--                         plain form (below)
-- ARGV[4..] for each message: message ID, id key index (0: none), dedup
--           key index (0: none), dedup window (ms), delay (ms, 0: straight
--           into the stream), number of field/value pairs n, then the n
--           pairs (body, headers); after the messages, optionally: TTL (s)
--           of the metrics hash KEYS[#KEYS], whose "published" field then
--           counts the messages added and "depth" records the backlog
--           (see metrics.go)
--
-- Plain form, for a call whose messages all go straight into the stream
-- with a body and nothing else (no WithID, dedup key, delay, headers or
-- backlog bound): ARGV[2] is 0, ARGV[3] is minus the number of messages,
-- then ARGV[4..] holds their bodies, then the optional metrics TTL (s) of
-- KEYS[#KEYS], counted as above. KEYS[5..] are then only the metrics hash.
-- Each entry has a body field only: its stream entry ID is the message's
-- ID (an entry without "id" is read so), which saves Redis an argument
-- and a field per message to store, and two strings per message to read.
--
-- Returns one result per message (an array of strings): "ok", "dup:<first
-- message ID>" or "full". A repeat of the same call returns the first
-- call's results and adds nothing (it only renews KEYS[4]); so does a
-- message whose id key exists (a repeat of WithID). A call whose messages
-- were all "full" is not remembered (a retry may find room). In the plain
-- form every message is added, and the call returns their entry IDs in
-- order, joined by commas (one string); a repeat returns the same string.
-- Errors: WRONGTYPE when a queue key holds another type. Counting in the
-- metrics hash is under pcall: its errors are not returned.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   two messages into the stream, counted         …/publish/ok
--   a delayed message                             …/publish/delayed
--   without the metrics TTL                       …/publish/no-metrics
--   metrics key of another type: still published  …/publish/metrics-wrongtype
--   a repeat of the call                          …/publish/repeat
--   WithID, first time                            …/publish/id
--   WithID, seen before                           …/publish/id/seen
--   dedup key, first time                         …/publish/dedup
--   dedup key taken (with an id key)              …/publish/dedup/dup
--   backlog full (delayed messages count)         …/publish/full
--   room for the first message only               …/publish/full/partly
--   stream key of another type: error             …/publish/wrongtype
--   plain form, first time, counted               …/publish/plain
--   plain form, a repeat: same IDs, added once    …/publish/plain/repeat
--   plain form without the metrics TTL            …/publish/plain/no-metrics
--   plain form, metrics key of another type       …/publish/plain/metrics-wrongtype
--   plain form, stream key of another type: error …/publish/plain/wrongtype
-- Not covered by hand: the PEXPIRE of a repeat refused (NOREPLICAS, OOM)
-- inside redis.pcall. Through the API: TestContract, TestWaitReplicas,
-- TestRedisPublishRetryNoDuplicate, TestInvalidAnswersStopConsume,
-- TestInvalidReplies/publish.
local prev = redis.call('GET', KEYS[4])
if prev then
  -- A write, so that a WAIT after this repeat (WaitReplicas) counts the
  -- replication offset from here, which covers the first call's writes: a
  -- repeat that wrote nothing would let WAIT on a fresh connection return
  -- at once. pcall: a refused write (NOREPLICAS, OOM) must not turn the
  -- first call's success into an error.
  redis.pcall('PEXPIRE', KEYS[4], ARGV[1])
  if tonumber(ARGV[3]) < 0 then
    return prev
  end
  return cmsgpack.unpack(prev)
end
local count = tonumber(ARGV[3])
if count < 0 then
  local stream, call = KEYS[1], redis.call
  local last = 3 - count
  local ids = {}
  for i = 4, last do
    ids[i - 3] = call('XADD', stream, '*', 'body', ARGV[i])
  end
  local all = table.concat(ids, ',')
  call('SET', KEYS[4], all, 'PX', ARGV[1])
  if ARGV[last + 1] then
    -- pcall: counting must never fail a publish that added its messages
    local mk, ttl = KEYS[#KEYS], ARGV[last + 1]
    pcall(function()
      call('HINCRBY', mk, 'published', -count)
      call('HSET', mk, 'depth', call('XLEN', stream) + call('ZCARD', KEYS[2]))
      call('EXPIRE', mk, ttl)
    end)
  end
  return all
end
local window = ARGV[1]
local maxlen = tonumber(ARGV[2])
local backlog = 0
if maxlen > 0 then
  backlog = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowStr = tostring(now)
local results = {}
local remember = false
local added = 0
local i = 4
for m = 1, tonumber(ARGV[3]) do
  local id, idk, ddk = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local dwin, delay, n = ARGV[i + 3], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local first = i + 6
  i = first + 2 * n
  local res = 'ok'
  local seen = false
  if idk > 0 then
    local p = redis.call('GET', KEYS[idk])
    if p then
      res, seen = p, true
    end
  end
  if not seen then
    if maxlen > 0 and backlog >= maxlen then
      res = 'full'
    elseif ddk > 0 and not redis.call('SET', KEYS[ddk], id, 'NX', 'PX', dwin) then
      res = 'dup:' .. redis.call('GET', KEYS[ddk])
    else
      -- An entry without "t" was published at its stream ID's time, and
      -- one without "a" is on its first attempt.
      if delay > 0 then
        local fields = {'id', id, 't', nowStr}
        for j = first, i - 1 do
          fields[#fields + 1] = ARGV[j]
        end
        redis.call('HSET', KEYS[3], id, cmsgpack.pack(fields))
        redis.call('ZADD', KEYS[2], now + delay, id)
      else
        redis.call('XADD', KEYS[1], '*', 'id', id, unpack(ARGV, first, i - 1))
      end
      backlog = backlog + 1
      added = added + 1
    end
    if idk > 0 and res ~= 'full' then
      redis.call('SET', KEYS[idk], res, 'PX', window)
    end
  end
  if res ~= 'full' then
    remember = true
  end
  results[m] = res
end
if remember then
  redis.call('SET', KEYS[4], cmsgpack.pack(results), 'PX', window)
end
if ARGV[i] and added > 0 then
  -- pcall: counting must never fail a publish that added its messages
  local mk, ttl = KEYS[#KEYS], ARGV[i]
  pcall(function()
    redis.call('HINCRBY', mk, 'published', added)
    redis.call('HSET', mk, 'depth', redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]))
    redis.call('EXPIRE', mk, ttl)
  end)
end
return results
