-- claim.lua: take a tick (or trigger, start, catch-up) of one job, once
-- across all replicas.
--
-- KEYS[1] claim key  <ns>{<job>}:tick:<id>
-- KEYS[2] pending    <ns>{<job>}:pending  (zset: id -> tick unix micros)
-- KEYS[3] fence      <ns>{<job>}:fence    (counter for Overlap Allow tokens)
-- ARGV[1] owner      "<node>:<nonce>"
-- ARGV[2] ttl        liveness of the claim in milliseconds
-- ARGV[3] score      tick unix micros to record in pending, or "" for none
-- ARGV[4] id         pending member
-- ARGV[5] fence      "1" to return a fencing token from KEYS[3]
-- ARGV[6] pttl       expiry of the pending zset in milliseconds (renewed on
--                    every claim, so a job that is no longer registered
--                    leaves nothing behind)
-- ARGV[7] oldest     with ARGV[3]: also report pending ticks from this score
--                    on (unix micros) whose claim has expired (their replica
--                    died), so the winner catches them up without a scan
-- ARGV[8] prefix     claim key prefix <ns>{<job>}:tick:  (same slot)
-- KEYS[4] paused     <ns>{<job>}:paused  (Inspector.Pause)
-- ARGV[9] pausable   "1" for scheduled runs (ticks, catch-ups, start runs),
--                    which a paused job does not claim; "0" for a Trigger
-- KEYS[5] lease      <ns>lease:{<job>}        the job's lease (package lock)
-- KEYS[6] lease fence <ns>lease:{<job>}:fence  its fencing counter
-- ARGV[10] lease owner, or "" to take no lease (KEYS[5], KEYS[6] unused)
-- ARGV[11] lease ttl in milliseconds
--
-- With ARGV[10], a claimed run also tries the job's lease (Overlap Skip) in
-- the same step, exactly as lock's acquire.lua does for a TryAcquire (see
-- internal/lockadopt): token max(last + 1, Redis TIME in µs); a lease this
-- owner holds already (a retry) is renewed with a new token.
--
-- Returns 0 when another owner holds or completed the claim (or this owner
-- completed it), -1 when the job is paused and the run pausable, otherwise
-- {status, token, id1, score1, id2, score2, ...}: status 1 when no lease
-- was asked for (token: the fencing token, 0 unless ARGV[5] is "1"), 2 when
-- the lease was taken (token: the lease's), 3 when another run holds it
-- (token 0), 4 when Redis refused the lease's keys (token 0: the caller
-- takes the lease on its own, which reports the error); then at most 16
-- abandoned pending ticks, oldest first.
-- A claim already held by this owner is a retry whose reply was lost:
-- it succeeds again (and is renewed).
--
-- Tests: each branch by hand on a single node and on a Cluster,
-- TestScriptBranches/redis=*/… (scheduler.Script):
--   free, not pending (a trigger or start run)     …/claim/free
--   free, with a fencing token (Overlap Allow)     …/claim/free/fence
--   held by another owner                          …/claim/held-by-other
--   completed (by anyone)                          …/claim/completed
--   ours already (a retry)                         …/claim/ours-again
--   pending, nothing abandoned                     …/claim/pending
--   pending, abandoned ticks reported (expired
--     claims inside the window, before this tick) …/claim/pending/abandoned
--   lease free: taken, token = Redis TIME          …/claim/lease/free
--   lease free, counter ahead of TIME: last + 1    …/claim/lease/counter-ahead
--   lease ours already (a retry)                   …/claim/lease/ours-again
--   lease held by another run                      …/claim/lease/held
--   claim lost: lease not touched                  …/claim/lease/claim-lost
--   lease key refused (WRONGTYPE): claim kept      …/claim/lease/refused
-- Through the API: TestReplicas, TestHistoryRetryAndPanic and the other
-- behaviour tests (local, single node, Cluster); a broken or refused claim:
-- TestInvalidFailsLoudly/…/claim-*. A paused job's scheduled claim (ARGV[9]
-- "1", KEYS[4] set) is refused: TestInspector (inspect_test.go).
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then
  return -1
end
local v = redis.call('GET', KEYS[1])
if v and v ~= 'run:' .. ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], 'run:' .. ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
local status, token = 1, 0
if ARGV[5] == '1' then
  token = redis.call('INCR', KEYS[3])
end
if (ARGV[10] or '') ~= '' then
  -- In pcall: a lease key Redis refuses (WRONGTYPE, a counter that is not
  -- a number) fails before any write and leaves the claim taken; the
  -- caller then takes the lease on its own, which reports the error.
  local done, tok = pcall(function()
    local t = redis.call('TIME')
    local now = t[1] * 1000000 + t[2]
    local tok = tonumber(redis.call('GET', KEYS[6]) or '0') + 1
    if now > tok then tok = now end
    local mine = redis.call('SET', KEYS[5], ARGV[10], 'NX', 'PX', ARGV[11])
    if not mine and redis.call('GET', KEYS[5]) == ARGV[10] then
      redis.call('PEXPIRE', KEYS[5], ARGV[11])
      mine = true
    end
    if not mine then return 0 end
    redis.call('SET', KEYS[6], string.format('%d', tok))
    return tok
  end)
  if not done then
    status = 4
  elseif tok == 0 then
    status = 3
  else
    status, token = 2, tok
  end
end
local out = {status, token}
if ARGV[3] ~= '' then
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[7], '(' .. ARGV[3], 'WITHSCORES', 'LIMIT', 0, 16)
  for i = 1, #ids, 2 do
    if redis.call('EXISTS', ARGV[8] .. ids[i]) == 0 then
      out[#out + 1] = ids[i]
      out[#out + 1] = ids[i + 1]
    end
  end
end
return out
