-- inspect_delayed.lua: a page of delayed (and backing-off) messages, the
-- soonest due first.
--
-- KEYS[1] delayed     sorted set of delayed message IDs, scored by due time (unix ms)
-- KEYS[2] payloads    hash: delayed message ID -> cmsgpack-packed entry fields
-- ARGV[1] offset      of the first message in the sorted set (integer >= 0)
-- ARGV[2] limit       most messages to return (integer >= 1)
--
-- Returns {total (integer), then for each message: ID, due (unix ms, as a
-- string), {field, value, ...}} (the fields are empty when the payload is
-- gone: the message is being moved into the stream).
-- Errors: WRONGTYPE when a key holds another type.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   the first page                                …/inspect_delayed/page
--   a page at an offset                           …/inspect_delayed/offset
--   a message without its payload                 …/inspect_delayed/payload-gone
--   no delayed messages                           …/inspect_delayed/empty
--   delayed key of another type: error            …/inspect_delayed/wrongtype
-- Through the API: TestInspector, TestInvalidReplies/inspect_delayed.
local off, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('ZRANGE', KEYS[1], off, off + n - 1, 'WITHSCORES')
local out = {redis.call('ZCARD', KEYS[1])}
for i = 1, #ids, 2 do
  local p = redis.call('HGET', KEYS[2], ids[i])
  local f = {}
  if p then f = cmsgpack.unpack(p) end
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = f
end
return out
