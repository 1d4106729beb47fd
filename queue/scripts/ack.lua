-- ack.lua: acknowledge and delete processed entries.
--
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2..] stream entry IDs
--
-- Entries are deleted on ack, so the stream holds only unacknowledged
-- messages and is never trimmed. Returns the number acknowledged.
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return n
