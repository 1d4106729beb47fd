-- complete.lua: mark a claimed tick done and record the run.
--
-- KEYS[1] claim key
-- KEYS[2] pending
-- KEYS[3] history   (list, newest first)
-- ARGV[1] owner
-- ARGV[2] ttl of the done marker in milliseconds (outlives the catch-up
--         window, so the tick is never run again)
-- ARGV[3] pending member
-- ARGV[4] run record (JSON), or "" for none
-- ARGV[5] history length to keep
-- ARGV[6] expiry of the history list in milliseconds (renewed on every
--         record, so a job that is no longer registered leaves nothing)
-- KEYS[4] lease            <ns>lease:{<job>}   the run's lease (package lock)
-- KEYS[5] lease queue      <ns>lease:{<job>}:q its waiters
-- KEYS[6] lease tombstone  <ns>lease:{<job>}:w:<lease owner>:rel
-- ARGV[7] lease owner, or absent to release no lease (KEYS[4..6] unused)
--
-- The claim is marked done when it is still the owner's or has expired
-- (nobody has caught it up yet); a claim another owner took over is left
-- to that owner. With ARGV[7], the lease is then released as the fast path
-- of lock's release.lua does when it is still ours and nobody waits for it
-- (see internal/lockadopt); otherwise it is left to the lock package's
-- release. Returns 1 when marked done, 0 otherwise, plus 2 when the lease
-- was released.
--
-- Tests (single node and Cluster), TestScriptBranches/redis=*/…:
--   ours: done, unpended, recorded       …/complete/ours
--   expired, not caught up: done         …/complete/expired
--   taken over by another owner          …/complete/taken-over
--   no record (ARGV[4] = '')             …/complete/no-record
--   history kept for none (ARGV[5] = 0)  …/complete/keep-none
--   history trimmed to ARGV[5]           …/complete/trim
--   lease ours, no waiter: released      …/complete/lease/released
--   lease ours, waiters queued: kept     …/complete/lease/waiters
--   lease not ours: left                 …/complete/lease/not-ours
--   lease key refused (WRONGTYPE): left  …/complete/lease/refused
-- Through the API: TestHistoryRetryAndPanic, TestLongRunKeepsLease; a
-- refused record: TestInvalidFailsLoudly/…/complete-wrong-type.
local v = redis.call('GET', KEYS[1])
local done = 0
if v == false or v == 'run:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'done:' .. ARGV[1], 'PX', ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[3])
  done = 1
end
local keep = tonumber(ARGV[5])
if ARGV[4] ~= '' and keep > 0 then
  redis.call('LPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], 0, keep - 1)
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
if ARGV[7] then
  -- In pcall: a lease key Redis refuses (WRONGTYPE) does not fail the
  -- record; the lock package's release reports it.
  local got, v = pcall(redis.call, 'GET', KEYS[4])
  if got and v == ARGV[7] and redis.call('EXISTS', KEYS[5]) == 0 then
    redis.call('DEL', KEYS[4])
    redis.call('SET', KEYS[6], '1', 'PX', 10000)
    done = done + 2
  end
end
return done
