-- record_call: record one model call of a step's durable tool loop and count what it cost, in
-- one step: the call is written once (HSETNX) and counted only by the write that recorded it,
-- so a replayed, redelivered or overlapping run never counts a call twice, and a run that dies
-- after the call still leaves it counted.
--
-- KEYS[1] turns hash   KEYS[2] session costs hash   KEYS[3] cost totals hash   KEYS[4] session hash
-- KEYS[5] this hour's costs hash (by user "u|", agent "a|", model "m|"; GET /costs)
-- ARGV[1] field ("<step>|<agent>|c<n>")   ARGV[2] the call's record (JSON)
-- ARGV[3] step id   ARGV[4] agent id   ARGV[5] model
-- ARGV[6] prompt tokens, ARGV[7] completion tokens ("" for both: the server counted none)
-- ARGV[8] cost in pico-dollars ("" when the model has no price, or the tokens are unknown)
-- ARGV[9] when the hour's hash expires (unix seconds)
-- KEYS[6] the session's budget holds hash: the call's hold (field ARGV[1]) is removed, since the
--   counters now hold what the call really cost; the costs hash keeps the most one call to the
--   model cost ("x|<model>|pico", "x|<model>|tokens"), the next calls' estimate (budget_gate.lua)
--
-- Counters (HINCRBY, exact integers) in the session's costs hash under "t|" (the session),
-- "s|<step>|", "a|<agent>|" and "m|<model>|": calls, prompt, completion, pico, uncosted (calls
-- without a cost), uncounted (calls without tokens); in the totals hash, for /metrics and users:
-- "am|<agent>|<model>|" (calls, prompt, completion, pico) and "u|<user>|" (calls, pico, ...).
--
-- Returns the record that holds the field (this call's, or the one recorded first)
redis.call("HDEL", KEYS[6], ARGV[1])
if redis.call("HSETNX", KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return redis.call("HGET", KEYS[1], ARGV[1])
end
local function add(hash, prefix)
  redis.call("HINCRBY", hash, prefix .. "calls", 1)
  if ARGV[6] == "" then
    redis.call("HINCRBY", hash, prefix .. "uncounted", 1)
  else
    redis.call("HINCRBY", hash, prefix .. "prompt", tonumber(ARGV[6]))
    redis.call("HINCRBY", hash, prefix .. "completion", tonumber(ARGV[7]))
  end
  if ARGV[8] == "" then
    redis.call("HINCRBY", hash, prefix .. "uncosted", 1)
  else
    redis.call("HINCRBY", hash, prefix .. "pico", tonumber(ARGV[8]))
  end
end
local function keep_max(field, value)
  if value > tonumber(redis.call("HGET", KEYS[2], field) or "-1") then
    redis.call("HSET", KEYS[2], field, string.format("%.0f", value))
  end
end
if ARGV[6] ~= "" then
  keep_max("x|" .. ARGV[5] .. "|tokens", tonumber(ARGV[6]) + tonumber(ARGV[7]))
end
if ARGV[8] ~= "" then
  keep_max("x|" .. ARGV[5] .. "|pico", tonumber(ARGV[8]))
end
add(KEYS[2], "t|")
add(KEYS[2], "s|" .. ARGV[3] .. "|")
add(KEYS[2], "a|" .. ARGV[4] .. "|")
add(KEYS[2], "m|" .. ARGV[5] .. "|")
add(KEYS[3], "am|" .. ARGV[4] .. "|" .. ARGV[5] .. "|")
local user = redis.call("HGET", KEYS[4], "userId")
if not user or user == "" then
  user = "-"
end
add(KEYS[3], "u|" .. user .. "|")
add(KEYS[5], "u|" .. user .. "|")
add(KEYS[5], "a|" .. ARGV[4] .. "|")
add(KEYS[5], "m|" .. ARGV[5] .. "|")
add(KEYS[5], "ua|" .. user .. "|" .. ARGV[4] .. "|")
add(KEYS[5], "um|" .. user .. "|" .. ARGV[5] .. "|")
redis.call("EXPIREAT", KEYS[5], tonumber(ARGV[9]))
return ARGV[2]
