-- withdraw.lua: take back a trigger request nobody took (Inspector.Trigger
-- after its ctx ended), unless a newer request replaced it.
--
-- KEYS[1] <ns>triggers  hash: job name -> request
-- ARGV[1] job name
-- ARGV[2] the request, as written
--
-- Returns 1 when withdrawn, 0 when it was taken or replaced.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
