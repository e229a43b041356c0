-- state_write: write and delete session state entries (shared, temporary, private) all or
-- nothing, each write bumping the entry's version, optionally only if expected versions still
-- hold (a transaction's reads, a PUT's ifVersion). Values are stored as the raw JSON strings they
-- are, never decoded: cjson would lose number precision and reorder objects.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] shared state hash   KEYS[3] temporary index
-- KEYS[4] private index
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] now (ms)   ARGV[4] the writer (updatedBy)
-- ARGV[5] number of expectations n
-- ARGV[6] .. ARGV[5+2n] expectations as field, version pairs (0: never written)
-- then the changes, five arguments each: "set" | "delete", field, state key, raw JSON value
--   ("" for a delete), time to live in ms (temporary sets; "0" otherwise)
-- A field is "s|<key>" (shared), "t|<key>" (temporary) or "p|<agent id>|<key>" (private).
-- Also (prelude): the state meta hash, temporary entries, private hashes.
--
-- Returns {"ok", {field, version, existed (1|0), ...}} (deleting what is not there changes nothing)
--   | {"conflict", {field, current version, ...}}   nothing written
--   | {"ended", session status}                      the session is over: nothing written
local sid, now, who = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local status = redis.call("HGET", KEYS[1], "status")
if status ~= "executing" and status ~= "waiting_for_input" then
  return {"ended", status or "missing"}
end
local expected = tonumber(ARGV[5])
local conflicts = {}
for i = 6, 5 + 2 * expected, 2 do
  local current = state_version(sid, ARGV[i])
  if current ~= tonumber(ARGV[i + 1]) then
    table.insert(conflicts, ARGV[i])
    table.insert(conflicts, current)
  end
end
if #conflicts > 0 then return {"conflict", conflicts} end

local function private_agent(field)
  return string.match(field, "^p|([^|]+)|")
end

local out = {}
for i = 6 + 2 * expected, #ARGV, 5 do
  local op, field, key, raw, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local scope = string.sub(field, 1, 1)
  local existed = 0
  if scope == "s" then
    if op == "set" then
      existed = redis.call("HSET", KEYS[2], key, raw) == 0 and 1 or 0
    else
      existed = redis.call("HDEL", KEYS[2], key)
    end
  elseif scope == "t" then
    local entry = temporary_state_key(sid, key)
    if op == "set" then
      existed = redis.call("EXISTS", entry)
      redis.call("SET", entry, raw, "PX", tonumber(ttl))
      redis.call("ZADD", KEYS[3], now + tonumber(ttl), key)
    else
      existed = redis.call("DEL", entry)
      redis.call("ZREM", KEYS[3], key)
    end
    redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", now)
  else
    local agent = private_agent(field)
    local hash = private_state_key(sid, agent)
    if op == "set" then
      existed = redis.call("HSET", hash, key, raw) == 0 and 1 or 0
      redis.call("SADD", KEYS[4], agent)
    else
      existed = redis.call("HDEL", hash, key)
    end
  end
  table.insert(out, field)
  if op == "delete" and existed == 0 then
    table.insert(out, state_version(sid, field))  -- nothing was there: no change, no new version
  else
    table.insert(out, bump_state_version(sid, field, now, who))
  end
  table.insert(out, existed)
end
return {"ok", out}
