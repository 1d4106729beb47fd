-- move.lua: move due delayed messages into the stream. Any number of
-- consumers may run it at once: each due message moves exactly once.
--
-- KEYS[1] stream      the queue's stream
-- KEYS[2] delayed     sorted set of delayed message IDs, scored by due time (unix ms)
-- KEYS[3] payloads    hash: delayed message ID -> cmsgpack-packed entry fields
-- ARGV[1] limit       most messages to move (integer >= 1)
--
-- Returns {moved, ms until the next delayed message is due (0 when one is
-- due already: the limit was reached) or -1 if none} (two integers). A due
-- message whose payload is gone is dropped from KEYS[2] and counted as
-- moved.
-- Errors: WRONGTYPE when a key holds another type.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   nothing delayed                               …/move/none
--   a due message moved                           …/move/due
--   one due, one later: ms until it               …/move/due-and-later
--   a due message without its payload             …/move/payload-gone
--   more due than the limit: 0 ms                 …/move/limit
--   delayed key of another type: error            …/move/wrongtype
-- Through the API: TestContract (delay, retry backoff),
-- TestInvalidReplies/move.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do
  local p = redis.call('HGET', KEYS[3], id)
  if p then
    redis.call('XADD', KEYS[1], '*', unpack(cmsgpack.unpack(p)))
    redis.call('HDEL', KEYS[3], id)
  end
  redis.call('ZREM', KEYS[2], id)
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt == 0 then
  return {#due, -1}
end
local wait = tonumber(nxt[2]) - now
if wait < 0 then
  wait = 0
end
return {#due, wait}
