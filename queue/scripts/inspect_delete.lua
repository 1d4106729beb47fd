-- inspect_delete.lua: delete dead letters by message ID.
--
-- KEYS[1]   stream      the queue's stream (for the depth gauge)
-- KEYS[2]   dead        dead-letter stream
-- KEYS[3]   deadindex   hash: message ID -> dead-letter entry ID
-- KEYS[4]   metrics     this minute's metrics hash (see metrics.go)
-- KEYS[5]   delayed     sorted set of delayed message IDs (for the depth gauge)
-- ARGV[1]   metrics TTL seconds
-- ARGV[2..] message IDs
--
-- Returns the IDs that named no dead letter (an array of strings, empty
-- when every one was deleted). The index entry of each ID is removed, also
-- one that named an entry already gone. When some were deleted, counts
-- them in KEYS[4] ("deleted") and records "depth" and "deadletters".
-- Errors: WRONGTYPE when a key holds another type.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   deleted and counted                           …/inspect_delete/found
--   an ID that is no dead letter                  …/inspect_delete/missing
--   an index entry naming an entry that is gone   …/inspect_delete/stale-index
--   deadindex key of another type: error          …/inspect_delete/wrongtype
-- Through the API: TestInspector, TestInvalidReplies/inspect_delete.
local missing = {}
local n = 0
for i = 2, #ARGV do
  local eid = redis.call('HGET', KEYS[3], ARGV[i])
  if eid and redis.call('XDEL', KEYS[2], eid) == 1 then
    n = n + 1
  else
    missing[#missing + 1] = ARGV[i]
  end
  if eid then
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[4], 'deleted', n)
  redis.call('HSET', KEYS[4], 'depth', redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[5]),
    'deadletters', redis.call('XLEN', KEYS[2]))
  redis.call('EXPIRE', KEYS[4], ARGV[1])
end
return missing
