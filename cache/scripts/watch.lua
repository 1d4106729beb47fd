-- watch.lua: read a key for a replica that waits for another replica's load
-- of it, marking the load lease watched so that the write replacing it is
-- announced (write.lua) and wakes the waiter, in one round trip.
--
-- KEYS[1]  the data key
-- ARGV[1]  a lease envelope to store when the key is absent (the waiter
--          takes the load over), "" to store nothing
-- ARGV[2]  its TTL in milliseconds (PX)
--
-- Returns 1 when the key was absent and ARGV[1] was stored; nil when it was
-- absent and nothing was stored; else the key's value: a lease, now with
-- flag 8 (watched) set and its TTL kept, or any other value as it is.
--
-- Tests (each on a single node and on a Cluster): TestWatchScriptBranches
-- in scripts_test.go: absent with and without a lease to store, a lease
-- (marked), a watched lease (as it is), a value, a foreign value. Through
-- the cache: TestLeaseWaitAnnounced (a waiting replica is woken by the
-- announced write; an unwatched fill announces nothing).
local cur = redis.call("GET", KEYS[1])
if not cur then
  if ARGV[1] == "" then
    return nil
  end
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
if string.len(cur) >= 30 and string.byte(cur, 1) == 1 then
  local flags = string.byte(cur, 2)
  if bit.band(flags, 4) ~= 0 and bit.band(flags, 8) == 0 then
    local marked = string.char(bit.bor(flags, 8))
    redis.call("SETRANGE", KEYS[1], 1, marked)
    return string.sub(cur, 1, 1) .. marked .. string.sub(cur, 3)
  end
end
return cur
