-- write.lua: store a value envelope and announce it, in one round trip.
--
-- KEYS[1]  the data key
-- ARGV[1]  the envelope (see envelope.go for its layout)
-- ARGV[2]  its TTL in milliseconds (PX)
-- ARGV[3]  mode:
--            "set"     write unconditionally (Cache.Set)
--            "fill"    write only if the key is absent, holds a load lease
--                      (ours, or a dead holder's) or holds no valid envelope:
--                      never overwrite a value written meanwhile by Set or
--                      by another replica's load; announce it only over a
--                      lease a waiting replica marked (mark.lua)
--            "refresh" as "fill", and also over the value whose nonce is
--                      ARGV[4] (the one this refresh replaces)
-- ARGV[4]  expected nonce, 8 bytes ("refresh" mode)
-- ARGV[5]  pub/sub channel, "" for none
-- ARGV[6]  message published on ARGV[5] when the value is written (in
--          "fill" mode, only over a marked lease)
--
-- Returns 1 when the value was written, 0 when it was not.
--
-- Tests (each on a single node and on a Cluster, with and without a
-- channel): TestScriptBranches/…/write/… in scripts_test.go: set over a
-- value; fill absent, over a lease, over a marked lease, over a foreign
-- value, refused over a value; refresh over the expected value, refused over
-- another. Through the
-- cache: TestContractSetGetDelete (set), TestContractFetchLoadsOnceThenHits
-- (fill), TestInvalidAnswersFailLoudly (a failing write is an error).
local mode = ARGV[3]
local announce = mode ~= "fill"
if mode ~= "set" then
  local cur = redis.call("GET", KEYS[1])
  if cur and string.len(cur) >= 30 and string.byte(cur, 1) == 1 then
    local flags = string.byte(cur, 2)
    if bit.band(flags, 4) == 0 then
      if mode ~= "refresh" or string.sub(cur, 23, 30) ~= ARGV[4] then
        return 0
      end
    elseif bit.band(flags, 8) ~= 0 then
      announce = true
    end
  end
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
if announce and ARGV[5] ~= "" then
  redis.call("PUBLISH", ARGV[5], ARGV[6])
end
return 1
