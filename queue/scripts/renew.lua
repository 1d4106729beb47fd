-- renew.lua: renew the lease of entries a live consumer is still working on
-- by resetting their idle time, but only for entries it still owns.
--
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2] consumer name
-- ARGV[3..] stream entry IDs
--
-- Returns the IDs the consumer no longer owns (reclaimed by another
-- consumer, or settled).
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
