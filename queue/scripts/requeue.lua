-- requeue.lua: move dead letters back to the queue with a fresh attempt count.
--
-- KEYS[1] stream
-- KEYS[2] dead        dead-letter stream
-- KEYS[3] deadindex   hash: message ID -> dead-letter stream entry ID
-- ARGV[1] mode: "ids" (ARGV[2..] are message IDs) or "entries" (ARGV[2..]
--         are dead-letter stream entry IDs)
--
-- Returns the arguments that named no dead letter.
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
