-- budget_set: replace a session's budget (PATCH .../budget, or an answer raising it). If the
-- session is paused on its budget and the new one leaves room (spent below every limit), the
-- pause ends: every step parked on it is queued again, to run from where it stopped (its
-- recorded model calls replay), and its budget request is removed. The caller routes them.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] input requests hash   KEYS[4] costs hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] now (ms)   ARGV[4] reservation (ms)
-- ARGV[5] the budget (JSON: maxPico as a decimal string, maxTokens)
-- Also (prelude): the deadlines and input deadlines, the status indexes.
--
-- Returns {"ok"} (not paused) | {"resumed", {step id, step record JSON, ...}}
--   | {"paused"} (still no room: the pause goes on) | {"ended", session status}
local sid, now = ARGV[2], tonumber(ARGV[3])
local f = redis.call("HMGET", KEYS[1], "status", "budgetPause")
if f[1] ~= "executing" and f[1] ~= "waiting_for_input" then
  return {"ended", f[1] or "missing"}
end
redis.call("HSET", KEYS[1], "budget", ARGV[5])
if not f[2] then
  return {"ok"}
end
local budget = cjson.decode(ARGV[5])
local c = redis.call("HMGET", KEYS[4], "t|pico", "t|prompt", "t|completion")
local spent_pico = tonumber(c[1] or "0")
local spent_tokens = tonumber(c[2] or "0") + tonumber(c[3] or "0")
if (budget["maxPico"] and spent_pico >= tonumber(budget["maxPico"]))
    or (budget["maxTokens"] and spent_tokens >= tonumber(budget["maxTokens"])) then
  return {"paused"}
end
redis.call("HDEL", KEYS[1], "budgetPause")
local resumed = {}
local requests = redis.call("HGETALL", KEYS[3])
for i = 1, #requests, 2 do
  local step_id = requests[i]
  if cjson.decode(requests[i + 1])["reason"] == "budget" then
    local member = sid .. "|" .. step_id
    local rec = cjson.decode(redis.call("HGET", KEYS[2], step_id) or "{}")
    redis.call("HDEL", KEYS[3], step_id)
    redis.call("ZREM", input_deadlines_key(), member)
    if rec["status"] == "waiting_for_input" then
      rec["status"], rec["agentId"], rec["queuedAt"] = "queued", nil, now
      local encoded = cjson.encode(rec)
      redis.call("HSET", KEYS[2], step_id, encoded)
      redis.call("ZADD", deadlines_key(), now + tonumber(ARGV[4]), member)
      table.insert(resumed, step_id)
      table.insert(resumed, encoded)
      redis.call("HINCRBY", KEYS[1], "waitingSteps", -1)
    end
  end
end
if tonumber(redis.call("HGET", KEYS[1], "waitingSteps") or "0") <= 0 then
  set_session_status(sid, KEYS[1], "executing", now)
end
return {"resumed", resumed}
