-- position.lua: a channel's current position, starting its epoch if it has
-- none (first use, expired, Redis restarted empty).
--
-- KEYS[1] meta     hash: e = epoch, o = last offset
-- KEYS[2] history  stream (deleted when a new epoch starts)
-- ARGV[1] epoch to start if meta is missing
-- ARGV[2] position ttl (ms)
--
-- Returns {epoch, offset}.
local m = redis.call('HMGET', KEYS[1], 'e', 'o')
if m[1] then
  return {m[1], tonumber(m[2])}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'o', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {ARGV[1], 0}
