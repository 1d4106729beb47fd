-- history.lua: the messages of a channel after a position, if the history
-- still holds all of them.
--
-- KEYS[1] meta     hash: e = epoch, o = last offset
-- KEYS[2] history  stream, entry ID "0-<offset>", field d = data, h = headers (optional)
-- ARGV[1] epoch of the position
-- ARGV[2] offset of the position
-- ARGV[3] most messages to return
-- ARGV[4] "1": the position is one a Hub handed out, so meta behind it means
--         Redis lost writes (a failover to a lagging replica): start a new
--         epoch so that every Hub and client notices. "0": a client's
--         position; behind meta it is only refused.
-- ARGV[5] epoch to start if meta is missing or rotated
-- ARGV[6] position ttl (ms)
--
-- Returns {epoch, offset, status, id1, data1, headers1, id2, ...} where
-- epoch/offset are the current position, status is 1 when the entries
-- after the position are all returned, 0 when they are not (resync), and
-- headers is "" for an entry without them.
local m = redis.call('HMGET', KEYS[1], 'e', 'o')
local epoch, top = m[1], tonumber(m[2])
local since = tonumber(ARGV[2])
if not epoch or (ARGV[4] == '1' and epoch == ARGV[1] and top < since) then
  epoch, top = ARGV[5], 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {epoch, top, 0}
end
if epoch ~= ARGV[1] or top < since then
  return {epoch, top, 0}
end
local n = top - since
if n == 0 then
  return {epoch, top, 1}
end
if n > tonumber(ARGV[3]) then
  return {epoch, top, 0}
end
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. since, '+', 'COUNT', n)
if #entries < n or entries[1][1] ~= '0-' .. (since + 1) then
  return {epoch, top, 0}
end
local out = {epoch, top, 1}
for _, e in ipairs(entries) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][2]
  out[#out + 1] = e[2][4] or ''
end
return out
