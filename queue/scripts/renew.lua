-- renew.lua: renew the lease of entries a live consumer is still working on
-- by resetting their idle time, but only for entries it still owns.
--
-- KEYS[1]   stream      the queue's stream
-- ARGV[1]   group       consumer group name
-- ARGV[2]   consumer    consumer name
-- ARGV[3..] entries     stream entry IDs
--
-- Returns the IDs the consumer no longer owns (an array of strings, empty
-- when it owns them all): reclaimed by another consumer, or settled.
-- Errors: NOGROUP when the stream or the group does not exist (the caller
-- ignores it: Redis lost the stream); WRONGTYPE when KEYS[1] is not a
-- stream.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   owned: idle time reset                        …/renew/own
--   reclaimed by another, or settled: lost        …/renew/lost
--   no entries                                    …/renew/none
--   no group: error                               …/renew/no-group
-- Through the API: TestRedisLeaseRenewal, TestInvalidReplies/renew.
local lost = {}
local own = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    own[#own + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if #own > 0 then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(own), 'JUSTID')
end
return lost
