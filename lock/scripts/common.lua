-- common.lua: helpers for the slow paths of release and cancel. It is not
-- a script on its own: loadScript inserts it at a script's "-- @common"
-- line, after the fast path, so that a call taking the fast path does not
-- pay for defining them.
--
-- Keys shared by the lock's scripts (all carry the hash tag {key}, so they
-- live in one Cluster slot):
--   KEYS[1] lock        <prefix>{key}            value <owner>, PX ttl
--   KEYS[2] fence       <prefix>{key}:fence      last token issued, no expiry
--   KEYS[3] queue       <prefix>{key}:q          zset owner -> arrival (µs)
--   KEYS[4] queue info  <prefix>{key}:qi         hash owner -> "<deadline µs>|<ttl ms>|<reserve>"
--   KEYS[5] wake prefix <prefix>{key}:w:         + owner = the waiter's wake list
--   KEYS[6] tombstone   <prefix>{key}:w:<owner>:rel (release.lua only)
--
-- Tokens are max(last + 1, Redis TIME in µs): strictly increasing while the
-- counter survives, and still increasing after a restart that lost it, as
-- long as the server clock does not go back. Doubles represent them exactly
-- (µs since 1970 < 2^53). An owner may reserve the tokens after its own
-- (reserve > 1: the counter is set to token + reserve - 1) to hand them to
-- in-process successors without a round trip (WithLocalHandoff).
--
-- Tests: each helper runs inside release.lua and cancel.lua's branches of
-- TestScriptBranches/topology=*/… (single node and Cluster):
--   now_us, next_token (reserve 1)        …/release/grant, …/cancel/*/pass-*
--   next_token (reserve > 1)              …/release/grant/reserve, …/release/keep
--   bump (raise), bump (lower: no-op)     …/release/slow/bump, …/release/slow/bump-lower
--   handoff: grant                        …/release/grant, …/release/expired/pass-on
--   handoff: wake only                    …/release/wake, …/cancel/granted/wake
--   handoff: dead waiter skipped          …/release/grant/dead-waiter-skipped
--   handoff: our own entry skipped        …/release/grant/own-entry-skipped
--   handoff: entry without info skipped   …/release/grant/entry-without-info-skipped
--   handoff: info without a reserve       …/release/grant/info-without-reserve
--   handoff: nobody left                  …/cancel/granted/delete
--   free '1' / free '0'                   …/release/grant, …/release/wake

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function next_token(now, reserve)
  local tok = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
  if now > tok then tok = now end
  local s = string.format('%d', tok)
  if reserve > 1 then
    redis.call('SET', KEYS[2], string.format('%d', tok + reserve - 1))
  else
    redis.call('SET', KEYS[2], s)
  end
  return tok, s
end

-- bump keeps the fence counter >= the token s, a decimal string (Redlock:
-- a token issued by a quorum is propagated to every node at refresh and
-- release). '0' is a no-op.
local function bump(s)
  local tok = tonumber(s)
  if tok and tok > 0 and tok > tonumber(redis.call('GET', KEYS[2]) or '0') then
    redis.call('SET', KEYS[2], s)
  end
end

-- handoff gives the lock to the longest-waiting live waiter (grant == '1':
-- sets the lock to the waiter with a fresh token and pushes
-- "g|<token>|<now µs>" to its wake list) or only wakes it (grant == '0':
-- pushes "n"). Waiters whose entry deadline passed are dropped. Returns 1 if
-- a waiter was found.
local function handoff(grant)
  local now
  while true do
    local e = redis.call('ZPOPMIN', KEYS[3])
    if #e == 0 then return 0 end
    now = now or now_us()
    local w = e[1]
    local info = redis.call('HGET', KEYS[4], w)
    if info then
      redis.call('HDEL', KEYS[4], w)
    end
    if w == ARGV[1] then
      info = nil -- our own entry, left by a re-sent acquire: not a waiter
    end
    if info then
      local sep = string.find(info, '|', 1, true)
      local dl = tonumber(string.sub(info, 1, sep - 1))
      local ttl = string.sub(info, sep + 1)
      local reserve = 1
      local sep2 = string.find(ttl, '|', 1, true)
      if sep2 then
        reserve = tonumber(string.sub(ttl, sep2 + 1)) or 1
        ttl = string.sub(ttl, 1, sep2 - 1)
      end
      if dl > now then
        local wk = KEYS[5] .. w
        if grant == '1' then
          local _, s = next_token(now, reserve)
          redis.call('SET', KEYS[1], w, 'PX', ttl)
          redis.call('RPUSH', wk, 'g|' .. s .. '|' .. string.format('%d', now))
        else
          redis.call('RPUSH', wk, 'n')
        end
        redis.call('PEXPIRE', wk, tonumber(ttl) + 10000)
        return 1
      end
    end
  end
end

-- free releases a lock we own: hand it off, or delete it.
local function free(grant)
  if grant == '1' then
    if handoff('1') == 0 then redis.call('DEL', KEYS[1]) end
  else
    redis.call('DEL', KEYS[1])
    handoff('0')
  end
end
