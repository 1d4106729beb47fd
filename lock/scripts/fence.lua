-- fence.lua: keep-max compare-and-set of a resource's fencing token,
-- optionally storing a value together with it.
-- KEYS[1] fence hash <prefix>{resource}: field t = highest token, v = value
-- ARGV[1] token (decimal, compared exactly as a uint64)
-- ARGV[2] 'c' check only, 's' also set field v to ARGV[3]
-- ARGV[3] value (mode 's')
-- Returns {1, token} if accepted (token >= stored), {0, stored} if stale.
--
-- Tests (single node and Cluster), TestScriptBranches/topology=*/…:
--   first token             …/fence/first
--   stale, fewer digits     …/fence/stale/shorter
--   stale, same length      …/fence/stale/same-length
--   equal: accepted         …/fence/equal
--   newer, set the value    …/fence/newer/set
--   newer, check only       …/fence/newer/check
-- Through the API: TestFence, TestHolderPausedGoroutine.
local cur = redis.call('HGET', KEYS[1], 't')
local tok = ARGV[1]
if cur and (#tok < #cur or (#tok == #cur and tok < cur)) then
  return {0, cur}
end
redis.call('HSET', KEYS[1], 't', tok)
if ARGV[2] == 's' then redis.call('HSET', KEYS[1], 'v', ARGV[3]) end
return {1, tok}
