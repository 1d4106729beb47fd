-- abandoned.lua: find claimed ticks whose replica died before completing
-- them (claim expired, tick still pending), within the catch-up window.
--
-- KEYS[1] pending   <ns>{<job>}:pending
-- ARGV[1] oldest tick (unix micros) still in the window; older entries are
--         pruned
-- ARGV[2] claim key prefix  <ns>{<job>}:tick:  (same hash slot as KEYS[1])
-- ARGV[3] maximum number of ticks to return
--
-- Returns a flat list id1, score1, id2, score2, ... oldest first.
--
-- Tests (single node and Cluster), TestScriptBranches/redis=*/…:
--   abandoned ticks found, older ones pruned   …/abandoned/found
--   at most ARGV[3]                            …/abandoned/limit
--   none                                       …/abandoned/none
-- Through the API: TestReplicas/AbandonedScan; a refused scan:
-- TestInvalidScan.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #ids, 2 do
  if redis.call('EXISTS', ARGV[2] .. ids[i]) == 0 then
    out[#out + 1] = ids[i]
    out[#out + 1] = ids[i + 1]
  end
end
return out
