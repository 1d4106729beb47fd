-- release.lua: compare-and-delete. If the lock holds our owner value, hand
-- it to the next live waiter (or delete it and wake that waiter).
-- KEYS: see common.lua.
-- ARGV[1] owner
-- ARGV[2] our token: the fence counter is raised to it (Redlock; 0 = skip)
-- ARGV[3] '1' grant directly to the next waiter, '0' wake it only
-- Returns 1 if the lock was ours, 0 if it had expired or been taken.
bump(tonumber(ARGV[2]))
local cur = redis.call('GET', KEYS[1])
if owned(cur, ARGV[1]) then
  free(ARGV[3])
  return 1
end
if not cur then
  handoff(ARGV[3]) -- it expired while others waited: pass it on now
end
return 0
