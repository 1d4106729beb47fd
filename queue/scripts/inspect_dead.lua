-- inspect_dead.lua: walk a bounded stretch of the dead-letter stream,
-- oldest first, selecting the entries whose last error contains a
-- substring, and page through them, requeue them or delete them. Callers
-- loop over it, passing the returned cursor, so that no call holds Redis
-- for long and the caller never holds more than one batch.
--
-- KEYS[1] stream      the queue's stream (requeued entries go there)
-- KEYS[2] dead        dead-letter stream
-- KEYS[3] deadindex   hash: message ID -> dead-letter entry ID
-- KEYS[4] metrics     this minute's metrics hash (see metrics.go)
-- KEYS[5] delayed     sorted set of delayed message IDs (for the depth gauge)
-- ARGV[1] mode        "page", "requeue" or "delete"
-- ARGV[2] cursor      continue after this dead entry ID ("" from the start)
-- ARGV[3] end         last dead entry ID to consider ("+" for the end): a
--                     bulk requeue bounds itself to the entries that
--                     existed when it began, so that messages that die
--                     again are not requeued twice
-- ARGV[4] examine     most entries to examine in this call (integer >= 1)
-- ARGV[5] want        most entries to select (integer >= 1, page mode;
--                     ignored otherwise)
-- ARGV[6] substring   the error must contain it, ASCII-lowercased, compared
--                     with the lowercased error ("" selects every entry)
-- ARGV[7] metrics TTL seconds (requeue and delete modes)
--
-- Returns {next cursor, selected count, then in page mode each selected
-- entry as {entry ID, {field, value, ...}}}: the cursor is the last entry
-- examined when the page filled or ARGV[4] entries were examined, "" when
-- the walk is done. Requeued entries get a fresh attempt count ("a" = 1),
-- as requeue.lua; the index entry of a requeued or deleted one is removed
-- when it names that entry. Requeue and delete count what they selected in
-- KEYS[4] ("requeued" or "deleted") and record "depth" and "deadletters".
-- Errors: WRONGTYPE when a key holds another type; "ERR Invalid stream ID"
-- when ARGV[2] or ARGV[3] is not a stream ID.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   a page of every entry, walk done              …/inspect_dead/page
--   a page filtered by error, any case            …/inspect_dead/page/filter
--   the page filled: cursor at its last entry     …/inspect_dead/page/full
--   continuing after a cursor                     …/inspect_dead/page/cursor
--   ARGV[4] examined, none selected: cursor       …/inspect_dead/page/examined
--   no dead letters                               …/inspect_dead/page/empty
--   requeue by error, counted                     …/inspect_dead/requeue
--   requeue up to an end ID                       …/inspect_dead/requeue/end
--   requeue selecting nothing: nothing counted    …/inspect_dead/requeue/none
--   delete, counted                               …/inspect_dead/delete
--   delete: an index naming a newer entry, no id  …/inspect_dead/delete/index-elsewhere
--   a cursor that is not an ID: error             …/inspect_dead/bad-cursor
--   dead key of another type: error               …/inspect_dead/wrongtype
-- Through the API: TestInspector, TestInvalidReplies/inspect_dead.
local mode, sub = ARGV[1], ARGV[6]
local start = '-'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end
local examine, want = tonumber(ARGV[4]), tonumber(ARGV[5])
local r = redis.call('XRANGE', KEYS[2], start, ARGV[3], 'COUNT', examine)
local out = {'', 0}
local selected = 0
local next = ''
for i, e in ipairs(r) do
  local f = e[2]
  local match = sub == ''
  local id
  for j = 1, #f, 2 do
    if f[j] == 'e' and not match then
      match = string.find(string.lower(f[j + 1]), sub, 1, true) ~= nil
    elseif f[j] == 'id' then
      id = f[j + 1]
    end
  end
  if match then
    selected = selected + 1
    if mode == 'page' then
      out[#out + 1] = {e[1], f}
    else
      if mode == 'requeue' then
        for j = 1, #f, 2 do
          if f[j] == 'a' then f[j + 1] = '1' end
        end
        redis.call('XADD', KEYS[1], '*', unpack(f))
      end
      redis.call('XDEL', KEYS[2], e[1])
      if id and redis.call('HGET', KEYS[3], id) == e[1] then
        redis.call('HDEL', KEYS[3], id)
      end
    end
  end
  if mode == 'page' and selected >= want then
    next = e[1]
    break
  end
  if i == #r and #r == examine then
    next = e[1]
  end
end
if mode ~= 'page' and selected > 0 then
  local field = 'requeued'
  if mode == 'delete' then field = 'deleted' end
  redis.call('HINCRBY', KEYS[4], field, selected)
  redis.call('HSET', KEYS[4], 'depth', redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[5]),
    'deadletters', redis.call('XLEN', KEYS[2]))
  redis.call('EXPIRE', KEYS[4], ARGV[7])
end
out[1] = next
out[2] = selected
return out
