-- acquire.lua: take the lock if it is free (SET NX PX) with a new fencing
-- token; if it already holds our owner value (go-redis re-sent the script
-- after a timeout, or a release handed it to us and we did not read the
-- grant) keep it, extend it to ttl and issue it a new token; otherwise, if
-- asked, queue us as a waiter.
-- KEYS: see common.lua (KEYS[1..4]).
-- ARGV[1] owner (random, unique per acquire call)
-- ARGV[2] ttl in ms
-- ARGV[3] queue-entry lifetime in ms; 0 = do not queue (TryAcquire)
-- ARGV[4] '1' if an earlier attempt of this acquire may have queued us
-- ARGV[5] tokens to reserve (optional, default 1): the counter is set to
--         token + reserve - 1 (see common.lua)
-- Returns {1, token, now µs} when held by us, {0, pttl ms of the holder, now µs}.
--
-- Tokens are max(last + 1, Redis TIME in µs), as in common.lua. It needs
-- none of common.lua's helpers.
--
-- Tests: each branch by hand on a single node and on a Cluster,
-- TestScriptBranches/topology=*/… (lock.Script):
--   free: taken with a token = Redis TIME          …/acquire/free
--   free, counter ahead of TIME: last + 1          …/acquire/free/counter-ahead
--   free, reserving tokens (ARGV[5])               …/acquire/free/reserve
--   ours already (a re-sent copy, a lost grant)    …/acquire/ours-again
--   taken by an attempt that had queued (ARGV[4])  …/acquire/free/was-queued
--   held by another, queue us (ARGV[3] > 0)        …/acquire/held/queue
--   held by another, TryAcquire (ARGV[3] = 0)      …/acquire/held/try
-- Through the API: TestContract, TestHandoff, TestLocalHandoff,
-- TestClientRetryIdempotent; a broken or refused acquire fails loudly:
-- TestInvalidFailsLoudly/…/acquire-*.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local reserve = tonumber(ARGV[5] or '1')
local tok = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if now > tok then tok = now end
local mine = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not mine and redis.call('GET', KEYS[1]) == ARGV[1] then
  -- Ours already. The token of the first copy (or of the grant) was never
  -- returned to the caller, so a new one is as good, and keeps the reserve.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  mine = true
end
if mine then
  redis.call('SET', KEYS[2], string.format('%d', tok + reserve - 1))
  if ARGV[4] == '1' then
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('HDEL', KEYS[4], ARGV[1])
  end
  return {1, tok, now}
end
local life = tonumber(ARGV[3])
if life > 0 then
  redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1])
  redis.call('HSET', KEYS[4], ARGV[1], string.format('%d|%s|%d', now + life * 1000, ARGV[2], reserve))
  local keep = life + 10000
  if redis.call('PTTL', KEYS[3]) < keep then redis.call('PEXPIRE', KEYS[3], keep) end
  if redis.call('PTTL', KEYS[4]) < keep then redis.call('PEXPIRE', KEYS[4], keep) end
end
return {0, redis.call('PTTL', KEYS[1]), now}
