-- force_release.lua: an operator takes a lock away from its holder
-- (Inspector.ForceRelease). The fence counter is advanced past every token
-- issued so far, and that revocation token is returned, so that a Fence
-- told about it refuses the old holder's token; the lock is deleted (the
-- holder's next refresh or release finds it gone: ErrLockLost) and, if
-- asked, handed to the longest-waiting live waiter with a newer token.
-- KEYS: see common.lua (KEYS[1..5]).
-- ARGV[1] the owner expected to hold it ("" for whoever holds it)
-- ARGV[2] '1' grant the lock to the next live waiter, '0' only wake it
-- Returns {1, revocation token (decimal string), previous owner}, or
-- {0, current owner or ""} when the lock is not held (by the expected
-- owner).
-- @common
local cur = redis.call('GET', KEYS[1])
if not cur or (ARGV[1] ~= '' and cur ~= ARGV[1]) then
  return {0, cur or ''}
end
local _, s = next_token(now_us(), 1)
redis.call('DEL', KEYS[1])
handoff(ARGV[2])
return {1, s, cur}
