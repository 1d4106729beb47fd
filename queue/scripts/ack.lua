-- ack.lua: acknowledge and delete processed entries.
--
-- KEYS[1]   stream     the queue's stream, p{name}:stream
-- ARGV[1]   group      consumer group name (string)
-- ARGV[2..] entries    stream entry IDs ("<ms>-<seq>"), at least one
--
-- Entries are deleted on ack, so the stream holds only unacknowledged
-- messages and is never trimmed. All of ARGV[2..] are deleted, also those
-- no longer pending (settled by another consumer after a reclaim).
--
-- Returns the number of entries acknowledged (integer): those that were
-- pending in the group. A missing stream or group acknowledges nothing (0).
-- Errors: WRONGTYPE when KEYS[1] is not a stream; "ERR Wrong number of args"
-- with no entry ID (the caller always sends one).
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   pending entries acked and deleted             …/ack/pending
--   already settled elsewhere: 0, others intact   …/ack/settled
--   no stream (nor group): 0                      …/ack/no-stream
--   no entry ID: error                            …/ack/no-ids
--   stream key of another type: error             …/ack/wrongtype
-- Through the API: TestContract (every Ack), TestInvalidSettleStopsConsume,
-- TestInvalidReplies/ack (a reply of the wrong shape).
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return n
