-- resend.lua: prepended to gcra.lua and window.lua (not a script on its
-- own). ARGV[3] is the request-ID TTL in ms, prefixed with 'r' when go-redis
-- wrote the command a second time (a retry after a timeout or a broken
-- connection: see sendMark in requestid.go). It sets ridttl; without
-- request IDs a re-sent copy is refused, since the first may have run.
-- Tests: TestScriptRequestIDBranches (both scripts, single node and
-- Cluster), TestRetryCountsOnce, TestRetryCountsOnceTopologies,
-- TestResentCopyAnswered, TestMovedIsNotResent.
local a3 = ARGV[3]
local resent = string.byte(a3, 1) == 114 -- 'r': a copy go-redis re-sent
if resent then a3 = string.sub(a3, 2) end
local ridttl = tonumber(a3)
if resent and ridttl == 0 then
  -- without request IDs nothing tells whether the first copy ran: refuse
  return redis.error_reply('OUTRIGGER_RESENT re-sent copy refused: the first may have counted')
end
