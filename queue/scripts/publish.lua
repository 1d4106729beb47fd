-- publish.lua: add one message, exactly once per message ID.
--
-- KEYS[1] stream          the queue's stream
-- KEYS[2] delayed         sorted set of delayed message IDs, scored by due time (ms)
-- KEYS[3] payloads        hash: delayed message ID -> cmsgpack-packed entry fields
-- KEYS[4] idkey           remembers this message ID's outcome for the retry window
-- KEYS[5] dedupkey        the dedup key (KEYS[4] again when there is none)
-- ARGV[1] message ID
-- ARGV[2] retry window (ms): how long KEYS[4] remembers the outcome
-- ARGV[3] dedup window (ms), 0 when there is no dedup key
-- ARGV[4] max backlog (XLEN + ZCARD), 0 for unbounded
-- ARGV[5] delay (ms), 0 to publish now
-- ARGV[6..] field/value pairs of the entry after id, t and a (body, headers)
--
-- Returns "ok", "dup:<first message ID>" or "full". A repeat of the same
-- message ID within the window (a client retry) returns the first outcome and
-- adds nothing. "full" is not remembered.
local prev = redis.call('GET', KEYS[4])
if prev then
  return prev
end
local maxlen = tonumber(ARGV[4])
if maxlen > 0 and redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= maxlen then
  return 'full'
end
local res = 'ok'
if tonumber(ARGV[3]) > 0 then
  if not redis.call('SET', KEYS[5], ARGV[1], 'NX', 'PX', ARGV[3]) then
    res = 'dup:' .. redis.call('GET', KEYS[5])
  end
end
if res == 'ok' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local fields = {'id', ARGV[1], 't', tostring(now), 'a', '1'}
  for i = 6, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  local delay = tonumber(ARGV[5])
  if delay > 0 then
    redis.call('HSET', KEYS[3], ARGV[1], cmsgpack.pack(fields))
    redis.call('ZADD', KEYS[2], now + delay, ARGV[1])
  else
    redis.call('XADD', KEYS[1], '*', unpack(fields))
  end
end
redis.call('SET', KEYS[4], res, 'PX', ARGV[2])
return res
