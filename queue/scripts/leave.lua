-- leave.lua: remove consumers from the group, but only those with nothing
-- pending, so that no delivered message loses its owner record.
--
-- KEYS[1] stream      the queue's stream
-- KEYS[2] wake        optional, with a consumer name: the consumer's wake
--                     stream, deleted
-- ARGV[1] group       consumer group name
-- ARGV[2] consumer    consumer name, or "" to sweep every consumer idle
--                     for ARGV[3] ms or more
-- ARGV[3] min idle    ms (integer), the sweep's minimum idle time
--
-- Returns the number of consumers removed (integer). A named consumer with
-- nothing pending counts as removed (1) also when it was not in the group;
-- one with messages pending is kept (0), its wake stream deleted anyway.
-- Errors: NOGROUP when the stream or the group does not exist (the caller
-- ignores it: nothing to leave); WRONGTYPE when a key holds another type.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   named, nothing pending: removed, wake deleted …/leave/named
--   named, something pending: kept                …/leave/named/pending
--   named, without KEYS[2]                        …/leave/named/no-wake-key
--   named, not in the group                       …/leave/named/unknown
--   named, no group: error                        …/leave/named/no-group
--   sweep: idle ones without pending removed      …/leave/sweep
--   sweep: none idle long enough                  …/leave/sweep/recent
--   sweep, no group: error                        …/leave/sweep/no-group
-- Through the API: TestRedisLeaveGroup, TestRedisStableNameResumes,
-- TestInvalidReplies/leave.
if ARGV[2] ~= '' then
  if KEYS[2] then
    redis.call('DEL', KEYS[2])
  end
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
  if #p == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) >= 0 and 1 or 0
  end
  return 0
end
local removed = 0
local minIdle = tonumber(ARGV[3])
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1]
    end
  end
  if name and pending == 0 and idle and idle >= minIdle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed = removed + 1
  end
end
return removed
