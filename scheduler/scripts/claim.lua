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
--
-- Returns 0 when another owner holds or completed the claim (or this owner
-- completed it), -1 when the job is paused and the run pausable, otherwise
-- {1, token, id1, score1, id2, score2, ...}: the fencing token (0 unless
-- ARGV[5] is "1") and at most 16 abandoned pending ticks, oldest first.
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
local token = 0
if ARGV[5] == '1' then
  token = redis.call('INCR', KEYS[3])
end
local out = {1, token}
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
