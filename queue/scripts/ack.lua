-- ack.lua: acknowledge and delete processed entries.
--
-- KEYS[1]   stream     the queue's stream, p{name}:stream
-- ARGV[1]   group      consumer group name (string)
-- ARGV[2..] entries    stream entry IDs ("<ms>-<seq>", or "<ms>"), at least one,
--                      in ascending order (the client sorts them)
--
-- Entries are deleted on ack, so the stream holds only unacknowledged
-- messages (no unacknowledged entry is ever trimmed). All of ARGV[2..] are
-- deleted, also those no longer pending (settled by another consumer after
-- a reclaim).
--
-- Deleting entry by entry (XDEL) costs Redis a scan of the entry's stream
-- node each time, and leaves tombstones that later reads step over. So the
-- entries that are now below both the group's oldest pending entry and
-- the first entry it has not delivered are removed with one XTRIM MINID
-- instead: every entry there was delivered and is no longer pending, i.e.
-- acknowledged (and already deleted, but for the ones acknowledged here);
-- only the rest of ARGV, found by a binary search over the sorted IDs, is
-- deleted with XDEL. The result is the same as
-- XDEL of every ID, with the same single consumer group. Without the group
-- ARGV[1] (or without the stream) nothing is trimmed and every ID is
-- deleted; so is every ID when the group's last delivered sequence number
-- is 2^52 or more (beyond what a Lua number holds exactly).
--
-- Returns the number of entries acknowledged (integer): those that were
-- pending in the group. A missing stream or group acknowledges nothing (0).
-- Errors: WRONGTYPE when KEYS[1] is not a stream; "ERR Wrong number of args"
-- with no entry ID (the caller always sends one); "Invalid stream ID" for
-- an ID that is not one.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   pending entries acked and deleted             …/ack/pending
--   already settled elsewhere: 0, others intact   …/ack/settled
--   trim reached: an acked, undeleted entry goes  …/ack/trim
--   trim stops at the first undelivered entry     …/ack/trim/undelivered
--   trim stops at the oldest pending entry        …/ack/trim/pending-oldest
--   last delivered set back below the pending     …/ack/trim/setid-back
--   the oldest acked last, after others           …/ack/trim/oldest-last
--   IDs on both sides of the trim point           …/ack/trim/both-sides
--   entries acked twice                           …/ack/trim/twice
--   an ID of milliseconds only                    …/ack/trim/ms-only
--   IDs of milliseconds only above the trim point …/ack/trim/ms-only-above
--   last delivered sequence >= 2^52: no trim      …/ack/huge-seq
--   no such group (another one): XDEL only        …/ack/no-group
--   no stream (nor group): 0                      …/ack/no-stream
--   no entry ID: error                            …/ack/no-ids
--   an ID that is not one: error                  …/ack/bad-id
--   stream key of another type: error             …/ack/wrongtype
-- Through the API: TestContract (every Ack), TestInvalidSettleStopsConsume,
-- TestInvalidReplies/ack (a reply of the wrong shape).
local stream, group = KEYS[1], ARGV[1]
local n = redis.call('XACK', stream, group, unpack(ARGV, 2))

-- parse returns the milliseconds and sequence number of an entry ID
-- ("<ms>-<seq>", or "<ms>": that millisecond's sequence number 0, as Redis
-- reads it).
local function parse(id)
  local d = string.find(id, '-', 1, true)
  if not d then
    return tonumber(id), 0
  end
  return tonumber(string.sub(id, 1, d - 1)), tonumber(string.sub(id, d + 1))
end

-- below reports whether entry ID a sorts before b (both parsed).
local function below(ams, aseq, bms, bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end

-- The trim point: the group's oldest pending entry, or the first entry
-- after the last delivered one if that comes first.
local minid, mms, mseq
local groups = redis.pcall('XINFO', 'GROUPS', stream)
if groups.err then
  groups = {} -- no stream (Redis lost it): nothing to trim
end
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then
      name = g[i + 1]
    elseif g[i] == 'last-delivered-id' then
      last = g[i + 1]
    end
  end
  if name == group and last then
    mms, mseq = parse(last)
    if mseq < 2 ^ 52 then
      mseq = mseq + 1
      minid = string.format('%d-%d', mms, mseq)
    end
  end
end
if minid then
  local p = redis.call('XPENDING', stream, group, '-', '+', 1)
  if p[1] then
    local pms, pseq = parse(p[1][1])
    if below(pms, pseq, mms, mseq) then
      minid, mms, mseq = p[1][1], pms, pseq
    end
  end
  redis.call('XTRIM', stream, 'MINID', minid)
end

-- XDEL what the trim did not reach: the IDs come in ascending order, so
-- those at or above the trim point are the last ones, found by a binary
-- search (a few IDs parsed, whatever their number).
local first = 2
if minid then
  local lo, hi = 2, #ARGV + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local ms, seq = parse(ARGV[mid])
    if below(ms, seq, mms, mseq) then
      lo = mid + 1
    else
      hi = mid
    end
  end
  first = lo
end
if first <= #ARGV then
  redis.call('XDEL', stream, unpack(ARGV, first))
end
return n
