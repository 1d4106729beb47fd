-- leave.lua: remove consumers from the group, but only those with nothing
-- pending, so that no delivered message loses its owner record.
--
-- KEYS[1] stream
-- KEYS[2] (with a consumer name) the consumer's wake stream, deleted
-- ARGV[1] consumer group
-- ARGV[2] consumer name, or "" to sweep every consumer idle for ARGV[3] ms
-- ARGV[3] minimum idle time (ms) of swept consumers
--
-- Returns the number of consumers removed.
if ARGV[2] ~= '' then
  if KEYS[2] then
    redis.call('DEL', KEYS[2])
  end
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
  if #p == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) >= 0 and 1 or 0
  end
  return 0
end
local removed = 0
local minIdle = tonumber(ARGV[3])
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1]
    end
  end
  if name and pending == 0 and idle and idle >= minIdle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed = removed + 1
  end
end
return removed
