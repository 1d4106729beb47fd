-- requeue.lua: move dead letters back to the queue with a fresh attempt count.
--
-- KEYS[1]   stream      the queue's stream
-- KEYS[2]   dead        dead-letter stream
-- KEYS[3]   deadindex   hash: message ID -> dead-letter stream entry ID
-- ARGV[1]   mode        "ids" (ARGV[2..] are message IDs) or "entries"
--                       (ARGV[2..] are dead-letter stream entry IDs)
-- ARGV[2..] IDs
--
-- Returns the arguments that named no dead letter (an array of strings,
-- empty when all were requeued). A requeued entry gets "a" = 1 (the last
-- error is kept) and its index entry is removed when it names that entry;
-- in "ids" mode an index entry naming an entry that is gone is removed.
-- Errors: WRONGTYPE when a key holds another type; "ERR Invalid stream ID"
-- for an "entries" argument that is not a stream ID.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   by message ID                                 …/requeue/ids
--   an ID that is no dead letter                  …/requeue/ids/missing
--   an index entry naming an entry that is gone   …/requeue/ids/stale-index
--   by entry ID, one missing                      …/requeue/entries
--   an index naming a newer entry; no id, no "a"  …/requeue/entries/index-elsewhere
--   an entry ID that is not one: error            …/requeue/entries/bad-id
--   dead key of another type: error               …/requeue/wrongtype
-- Through the API: TestContract (dead letter), TestInspector,
-- TestInvalidReplies/requeue.
local missing = {}
for i = 2, #ARGV do
  local eid = ARGV[i]
  if ARGV[1] == 'ids' then
    eid = redis.call('HGET', KEYS[3], ARGV[i])
  end
  local r = {}
  if eid then
    r = redis.call('XRANGE', KEYS[2], eid, eid)
  end
  if #r == 0 then
    missing[#missing + 1] = ARGV[i]
    if ARGV[1] == 'ids' and eid then
      redis.call('HDEL', KEYS[3], ARGV[i])
    end
  else
    local f = r[1][2]
    local id
    for j = 1, #f, 2 do
      if f[j] == 'a' then
        f[j + 1] = '1'
      elseif f[j] == 'id' then
        id = f[j + 1]
      end
    end
    redis.call('XADD', KEYS[1], '*', unpack(f))
    redis.call('XDEL', KEYS[2], eid)
    if id and redis.call('HGET', KEYS[3], id) == eid then
      redis.call('HDEL', KEYS[3], id)
    end
  end
end
return missing
