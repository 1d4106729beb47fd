-- publish.lua: append a message to a channel's history and send it to
-- every Hub subscribed to the channel, atomically.
--
-- KEYS[1] meta     hash: e = epoch, o = last offset
-- KEYS[2] history  stream of the last messages, entry ID "0-<offset>", field d = data
-- ARGV[1] pub/sub channel (same hash tag as the keys)
-- ARGV[2] data (one JSON value)
-- ARGV[3] history size (0: no history)
-- ARGV[4] history ttl (ms)
-- ARGV[5] position ttl (ms): how long meta outlives the last message
-- ARGV[6] epoch to start if meta is missing (first use, expired, Redis restarted empty)
-- ARGV[7] "1": SPUBLISH (Redis Cluster sharded pub/sub), else PUBLISH
-- ARGV[8] epoch of the last position this Hub's Publish acknowledged on the channel ("" none)
-- ARGV[9] its offset
-- ARGV[10] the message's headers, a JSON object of strings ("" none): trace
--          context from Hooks.OnPublish
--
-- meta behind a position Redis acknowledged means Redis lost writes (a
-- failover to a replica that lacked them): a new epoch starts, so that the
-- lost offsets are not reused unnoticed.
--
-- The pub/sub frame is "p<offset>:<epoch>:<data>", or with headers
-- "h<offset>:<epoch>:<length of headers>:<headers><data>"; the history entry
-- has field d = data and, with headers, h = headers. Returns {epoch, offset}.
local m = redis.call('HMGET', KEYS[1], 'e', 'o')
local epoch = m[1]
if epoch and epoch == ARGV[8] and tonumber(m[2]) < tonumber(ARGV[9]) then
  epoch = nil
end
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
local off = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local size = tonumber(ARGV[3])
if size > 0 then
  local id = '0-' .. off
  local trim = '='
  if size > 1000 then
    trim = '~'
  end
  if ARGV[10] == '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', trim, size, id, 'd', ARGV[2])
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', trim, size, id, 'd', ARGV[2], 'h', ARGV[10])
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local frame
if ARGV[10] == '' then
  frame = 'p' .. off .. ':' .. epoch .. ':' .. ARGV[2]
else
  frame = 'h' .. off .. ':' .. epoch .. ':' .. #ARGV[10] .. ':' .. ARGV[10] .. ARGV[2]
end
if ARGV[7] == '1' then
  redis.call('SPUBLISH', ARGV[1], frame)
else
  redis.call('PUBLISH', ARGV[1], frame)
end
return {epoch, off}
