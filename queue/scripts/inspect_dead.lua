-- inspect_dead.lua: walk a bounded stretch of the dead-letter stream,
-- oldest first, selecting the entries whose last error contains a
-- substring, and page through them, requeue them or delete them. Callers
-- loop over it, passing the returned cursor, so that no call holds Redis
-- for long and the caller never holds more than one batch.
--
-- KEYS[1] stream
-- KEYS[2] dead        dead-letter stream
-- KEYS[3] deadindex   hash: message ID -> dead-letter entry ID
-- KEYS[4] metrics     this minute's metrics hash (see metrics.go)
-- KEYS[5] delayed     sorted set of delayed message IDs (for the depth gauge)
-- ARGV[1] mode: "page", "requeue" or "delete"
-- ARGV[2] cursor: continue after this dead entry ID ("" from the start)
-- ARGV[3] last dead entry ID to consider ("+" for the end): a bulk
--         requeue bounds itself to the entries that existed when it
--         began, so that messages that die again are not requeued twice
-- ARGV[4] most entries to examine in this call
-- ARGV[5] most entries to select (page mode; ignored otherwise)
-- ARGV[6] substring the error must contain, ASCII-lowercased, compared
--         with the lowercased error ("" selects every entry)
-- ARGV[7] metrics hash TTL in seconds
--
-- Returns {next cursor or "" when the walk is done, selected count, then
-- in page mode each selected entry as {entry ID, {field, value, ...}}}.
-- Requeued entries get a fresh attempt count ("a" = 1), as requeue.lua.
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
