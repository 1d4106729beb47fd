-- inspect_info.lua: one consistent snapshot of a queue for the Inspector.
--
-- KEYS[1] stream      the queue's stream
-- KEYS[2] delayed     sorted set of delayed message IDs
-- KEYS[3] dead        dead-letter stream
-- KEYS[4] paused      the pause flag (see pause.go)
-- ARGV[1] group       consumer group name
--
-- Returns {stream length, pending, delayed, dead (integers), oldest stream
-- entry ID or "", now (Redis TIME in unix ms, as a string), pause flag value
-- or "", consumers in the group (integer), oldest dead entry ID or "", the
-- group's last delivered ID or ""}: 10 elements. Without the stream or the
-- group, pending and consumers are 0 and the last delivered ID "".
-- Errors: WRONGTYPE when a key holds another type (XINFO's error for a
-- missing stream is caught; XLEN has checked the type before).
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   nothing there                                 …/inspect_info/empty
--   every count, another group alongside          …/inspect_info/full
--   a stream without our group                    …/inspect_info/no-group
--   stream key of another type: error             …/inspect_info/wrongtype
-- Through the API: TestInspector, TestPauseAcrossReplicas,
-- TestInvalidReplies/inspect_info.
local len = redis.call('XLEN', KEYS[1])
local pending, consumers, last = 0, 0, ''
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, g in ipairs(groups) do
    local name, c, p, l
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1]
      elseif g[i] == 'consumers' then c = g[i + 1]
      elseif g[i] == 'pending' then p = g[i + 1]
      elseif g[i] == 'last-delivered-id' then l = g[i + 1]
      end
    end
    if name == ARGV[1] then
      pending, consumers, last = p or 0, c or 0, l or ''
    end
  end
end
local oldest = ''
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first > 0 then
  oldest = first[1][1]
end
local oldestDead = ''
local d = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if #d > 0 then
  oldestDead = d[1][1]
end
local paused = redis.call('GET', KEYS[4]) or ''
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {len, pending, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3]), oldest, tostring(now),
  paused, consumers, oldestDead, last}
