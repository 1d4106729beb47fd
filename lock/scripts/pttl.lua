-- pttl.lua: the lock's remaining time, if it is ours.
-- KEYS: see common.lua (KEYS[1]).
-- ARGV[1] owner
-- Returns the PTTL in ms, or -3 if the lock is not ours.
-- Tests (single node and Cluster): TestScriptBranches/topology=*/pttl/ours
-- and …/pttl/not-ours; through the API TestContract/…/ttl-and-refresh.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PTTL', KEYS[1])
end
return -3
