-- stats.lua: one consistent snapshot of a queue's counts.
--
-- KEYS[1] stream      the queue's stream
-- KEYS[2] delayed     sorted set of delayed message IDs
-- KEYS[3] dead        dead-letter stream
-- ARGV[1] group       consumer group name
--
-- Returns {stream length, pending, delayed, dead (integers), oldest entry ID
-- or "", now (Redis TIME in unix ms, as a string)}: 6 elements. Without the
-- stream or the group, pending is 0.
-- Errors: WRONGTYPE when a key holds another type (XPENDING's error for a
-- missing stream or group is caught; XLEN has checked the type before).
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   nothing there                                 …/stats/empty
--   every count                                   …/stats/full
--   a stream without the group                    …/stats/no-group
--   delayed key of another type: error            …/stats/wrongtype
-- Through the API: TestContract (Stats everywhere), TestInvalidReplies/stats.
local len = redis.call('XLEN', KEYS[1])
local pending = 0
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok and p[1] then
  pending = p[1]
end
local oldest = ''
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first > 0 then
  oldest = first[1][1]
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {len, pending, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3]), oldest, tostring(now)}
