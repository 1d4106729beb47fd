-- release.lua: compare-and-delete. If the lock holds our owner value, hand
-- it to the next live waiter (or delete it and wake that waiter).
-- KEYS: see common.lua (KEYS[1..6]).
-- ARGV[1] owner
-- ARGV[2] our token: the fence counter is raised to it (Redlock; 0 = skip)
-- ARGV[3] '1' grant directly to the next waiter, '0' wake it only
-- ARGV[4] optional, with ARGV[3] = '1': if > 0 and no live waiter is queued,
--         keep the lock instead (an in-process successor takes it over) with
--         a new token, reserving ARGV[4] tokens (see next_token)
-- ARGV[5] with ARGV[4]: the kept lock's ttl in ms
-- Returns 1 if the lock was ours (or we released it already: a re-sent
-- release finds our tombstone), 0 if it had expired or been taken, and
-- {2, token} when it was kept.
--
-- The tombstone KEYS[6] lives 10 s: long enough for go-redis (or the
-- caller) to re-send a release whose reply was lost after a timeout, which
-- would otherwise find the lock gone (freed by its first run) and report it
-- lost.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   fast path                                  …/release/fast
--   slow path, ours, raise the counter         …/release/slow/bump
--   slow path, ours, counter already higher    …/release/slow/bump-lower
--   ours, grant to the next waiter             …/release/grant (and …/grant/*)
--   ours, delete and wake (ARGV[3] = '0')      …/release/wake
--   ours, kept for an in-process successor     …/release/keep
--   ours, keep asked but a waiter is first     …/release/keep/waiter-first
--   not ours, our tombstone (a re-sent copy)   …/release/resent
--   not ours, expired: passed on               …/release/expired/pass-on
--   not ours, taken                            …/release/taken
-- Through the API: TestContract, TestHandoff, TestLocalHandoff,
-- TestReleaseRetryIdempotent.

-- Fast path, before common.lua's helpers: ours, nobody queued, nothing to
-- propagate or keep.
if ARGV[2] == '0' and not ARGV[4] and redis.call('GET', KEYS[1]) == ARGV[1]
    and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[6], '1', 'PX', 10000)
  return 1
end
-- @common
bump(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  local keep = tonumber(ARGV[4] or '0')
  if keep > 0 then
    if handoff('1') == 0 then
      local tok, s = next_token(now_us(), keep)
      redis.call('PEXPIRE', KEYS[1], ARGV[5])
      return {2, tok}
    end
  else
    free(ARGV[3])
  end
  redis.call('SET', KEYS[6], '1', 'PX', 10000)
  return 1
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  return 1
end
if not cur then
  handoff(ARGV[3]) -- it expired while others waited: pass it on now
end
return 0
