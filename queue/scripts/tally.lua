-- tally.lua: count settled messages in this minute's metrics hash and
-- record the backlog, for the Inspector's charts (see metrics.go). Sent in
-- the same pipeline as the settlements it counts: no extra round trip.
--
-- KEYS[1]   metrics     <prefix>{<name>}:m:<unix minute>
-- KEYS[2]   stream      the queue's stream
-- KEYS[3]   delayed     sorted set of delayed message IDs
-- KEYS[4]   dead        dead-letter stream
-- ARGV[1]   TTL         of the metrics hash, seconds
-- ARGV[2..] field, increment pairs ("acked", "retried", "dead", "released",
--           "requeued"; integers)
--
-- Returns 1, also when counting failed (a key of another type in the
-- way): metrics must never fail the settlements they ride along with.
-- Errors: none; every error is caught by pcall.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   counted, depth recorded                       …/tally/count
--   no counts: depth only                         …/tally/depth-only
--   metrics key of another type: still 1          …/tally/wrongtype
-- Through the API: TestInspector (the charts' counts).
pcall(function()
  for i = 2, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', KEYS[1], 'depth', redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]),
    'deadletters', redis.call('XLEN', KEYS[4]))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end)
return 1
