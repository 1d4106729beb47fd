-- fail.lua: settle a delivered entry that was not processed: schedule its
-- retry, dead-letter it, or release it to other consumers, atomically with
-- its ack.
--
-- KEYS[1]   stream      the queue's stream
-- KEYS[2]   delayed     sorted set of delayed message IDs, scored by due time (unix ms)
-- KEYS[3]   payloads    hash: delayed message ID -> cmsgpack-packed entry fields
-- KEYS[4]   dead        dead-letter stream
-- KEYS[5]   deadindex   hash: message ID -> dead-letter stream entry ID
-- ARGV[1]   group       consumer group name
-- ARGV[2]   entry       stream entry ID of the delivery
-- ARGV[3]   mode        "retry" (also used to release) or "dead"
-- ARGV[4]   delay       ms before the retry is visible (integer >= 0; "retry"
--                       only: 0 re-adds the entry to the stream at once)
-- ARGV[5]   message ID  the message's own ID (the "id" field)
-- ARGV[6..] fields      field/value pairs of the new entry (attempt "a" and
--                       last error "e" updated by the caller)
--
-- Returns 0 (integer) and does nothing when the entry is no longer pending
-- (another consumer settled it after reclaiming it, or the stream or group
-- is gone); returns 1 otherwise.
-- Errors: WRONGTYPE when a key holds another type.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   not pending: 0, nothing written               …/fail/not-pending
--   dead-lettered, with its index entry           …/fail/dead
--   retried at once: re-added to the stream       …/fail/retry-now
--   retried later: delayed set and payload        …/fail/retry-delayed
--   stream key of another type: error             …/fail/wrongtype
-- Through the API: TestContract (retry, dead letter, release on shutdown),
-- TestInvalidReplies/fail.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
local fields = {}
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
if ARGV[3] == 'dead' then
  local eid = redis.call('XADD', KEYS[4], '*', unpack(fields))
  redis.call('HSET', KEYS[5], ARGV[5], eid)
  return 1
end
local delay = tonumber(ARGV[4])
if delay > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[3], ARGV[5], cmsgpack.pack(fields))
  redis.call('ZADD', KEYS[2], now + delay, ARGV[5])
else
  redis.call('XADD', KEYS[1], '*', unpack(fields))
end
return 1
