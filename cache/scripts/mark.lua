-- mark.lua: tell the holder of a load lease that a replica waits for it.
--
-- KEYS[1]  the data key
-- ARGV[1]  the lease's nonce, 8 bytes (as the waiter read it)
--
-- Sets flagWaited (8) in the flags byte of the lease, in place (SETRANGE
-- keeps the TTL), if the key still holds that lease. write.lua announces a
-- load's value ("fill") only over a marked lease: no other replica waits
-- for an unmarked one, and none holds a local copy of an absent key that an
-- invalidation did not already drop (cache/guard.go).
--
-- Returns 1 when the lease is marked (now or before), 0 when the key holds
-- something else.
--
-- Tests (on a single node and on a Cluster): TestScriptBranches/…/mark/… in
-- scripts_test.go: absent, a value, another lease, the lease, marked twice.
local cur = redis.call("GET", KEYS[1])
if not cur or string.len(cur) < 30 or string.byte(cur, 1) ~= 1 then
  return 0
end
local flags = string.byte(cur, 2)
if bit.band(flags, 4) == 0 or string.sub(cur, 23, 30) ~= ARGV[1] then
  return 0
end
if bit.band(flags, 8) == 0 then
  redis.call("SETRANGE", KEYS[1], 1, string.char(bit.bor(flags, 8)))
end
return 1
