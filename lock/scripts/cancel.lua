-- cancel.lua: a waiter gives up. Leave the queue; if a release granted us
-- the lock meanwhile, release it (passing it on); if the lock is free, pass
-- the turn on; then push "c" to our wake list so that our pending BLPOP
-- returns at once.
-- KEYS: see common.lua.
-- ARGV[1] owner
-- ARGV[2] '1' grant directly to the next waiter, '0' wake it only
-- Returns 1 if we held the lock and released it, else 0.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   granted meanwhile, passed on (free '1', a waiter)  …/cancel/granted/pass-on
--   granted meanwhile, nobody waits: deleted            …/cancel/granted/delete
--   granted meanwhile, wake only (free '0')             …/cancel/granted/wake
--   lock free: the turn passed on (handoff)             …/cancel/free/pass-turn
--   held by another: only we leave                      …/cancel/held-by-other
-- Through the API: TestContract/…/acquire-ctx-done, TestWaiterGivesUpAtWakeRound.
-- @common
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
local cur = redis.call('GET', KEYS[1])
local had = 0
if cur == ARGV[1] then
  free(ARGV[2])
  had = 1
elseif not cur then
  handoff(ARGV[2])
end
local wk = KEYS[5] .. ARGV[1]
redis.call('RPUSH', wk, 'c')
redis.call('PEXPIRE', wk, 10000)
return had
