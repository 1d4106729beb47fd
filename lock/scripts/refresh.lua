-- refresh.lua: compare-and-pexpire; never re-creates an expired lock.
-- KEYS: see common.lua (KEYS[1..2]).
-- ARGV[1] owner
-- ARGV[2] our token: the fence counter is raised to it (Redlock; 0 = skip)
-- ARGV[3] new ttl in ms
-- Returns 1 if extended, 0 if the lock is no longer ours.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   ours, token 0 (RedisLocker)          …/refresh/ours
--   ours, raise the counter (Redlock)    …/refresh/ours/bump
--   ours, counter already higher         …/refresh/ours/bump-lower
--   not ours                             …/refresh/not-ours
-- Through the API: TestContract/…/ttl-and-refresh, …/do-refreshes-past-ttl,
-- …/auto-refresh; refused refreshes: TestInvalidFailsLoudly/…/refresh-*,
-- TestInvalidAutoRefreshLosesLock.
local tok = tonumber(ARGV[2])
if tok > 0 and tok > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], ARGV[2]) -- as bump in common.lua
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
