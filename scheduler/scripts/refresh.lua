-- refresh.lua: extend the liveness of a claim held by owner.
--
-- KEYS[1] claim key
-- ARGV[1] owner
-- ARGV[2] ttl in milliseconds
--
-- Returns 1 when extended, 0 when the claim is no longer the owner's.
--
-- Tests (single node and Cluster), TestScriptBranches/redis=*/…:
--   ours: extended        …/refresh/ours
--   another owner's       …/refresh/not-ours
--   completed             …/refresh/done
-- Through the API: TestLongRunKeepsLease; a refused refresh:
-- TestInvalidRefreshCancelsRun.
if redis.call('GET', KEYS[1]) == 'run:' .. ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
