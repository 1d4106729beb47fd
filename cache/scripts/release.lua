-- release.lua: drop a load lease if it is still ours, and wake the waiters.
--
-- KEYS[1]  the key holding the lease (a lease envelope, see envelope.go)
-- ARGV[1]  our owner token: the lease envelope's nonce, 8 bytes
-- ARGV[2]  pub/sub channel, "" for none
-- ARGV[3]  message published on ARGV[2] when the lease was dropped
--
-- Returns 1 when the lease was ours and was dropped, 0 otherwise.
--
-- Tests (each on a single node and on a Cluster, with and without a
-- channel): TestScriptBranches/…/release/… in scripts_test.go: absent, a
-- foreign value, a value, another's lease (all 0), our lease (dropped and
-- published). Through the cache: TestContractLoaderErrorSharedNotCached (a
-- failed load releases its lease).
local cur = redis.call("GET", KEYS[1])
if not cur or string.len(cur) < 30 or string.byte(cur, 1) ~= 1 then
  return 0
end
if bit.band(string.byte(cur, 2), 4) == 0 or string.sub(cur, 23, 30) ~= ARGV[1] then
  return 0
end
redis.call("DEL", KEYS[1])
if ARGV[2] ~= "" then
  redis.call("PUBLISH", ARGV[2], ARGV[3])
end
return 1
