-- budget_gate: may this step make its next model call (or start), within the session's budget?
-- (orchestrator/core/budgets.py says the rule.) Spent is the session's counters (record_call.lua
-- and complete_step.lua count them); calls in flight hold their expected cost in the holds hash
-- until record_call.lua removes the hold with the call's real cost. A call whose model has no
-- expected cost yet in this session runs only when no other call is in flight ("busy": ask
-- again). When the call would cross the budget the session pauses (its "budgetPause" field is
-- the request every parked step shows) and this step parks as an operator-input request: its
-- slot is freed (and handed over), its lease or reservation deadline removed, and the attempt it
-- was in does not count (a budget pause is not a failed try). A session already paused parks
-- the step the same way. A session without a budget answers "none"; a session that ended, or a
-- run that no longer owns its step, "ended" or "stale" (the call is not made).
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] input requests hash   KEYS[4] costs hash
-- KEYS[5] budget holds hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] step id   ARGV[4] agent id
-- ARGV[5] run token ("": the step has not started; it is queued with a reservation on the agent)
-- ARGV[6] now (ms)   ARGV[7] reservation (ms)   ARGV[8] hold id ("": a step's start, no call)
-- ARGV[9] hold until (ms)   ARGV[10] model
-- ARGV[11] the request to park with, if this call pauses the session (JSON object with its
--   "deadlineMs"; "question" is completed here with the figures)
-- Also (prelude): the deadlines and input deadlines, the agents' slots and waiting lists, the
-- status indexes.
--
-- Returns {"ok"} | {"none"} | {"busy"} | {"parked", {handed sid, step, queue, agent, ...},
--   1 if this call paused the session else 0, request JSON} | {"stale", step status}
--   | {"ended", session status}
local sid, step_id, token, now = ARGV[2], ARGV[3], ARGV[5], tonumber(ARGV[6])
local member = sid .. "|" .. step_id
local f = redis.call("HMGET", KEYS[1], "status", "budget", "budgetPause")
if f[1] ~= "executing" and f[1] ~= "waiting_for_input" then
  return {"ended", f[1] or "missing"}
end
local rec = cjson.decode(redis.call("HGET", KEYS[2], step_id) or "{}")
if token ~= "" then
  if rec["status"] ~= "running" or rec["token"] ~= token then
    return {"stale", rec["status"] or "missing"}
  end
elseif rec["status"] ~= "queued" or rec["agentId"] ~= ARGV[4] then
  return {"stale", rec["status"] or "missing"}
end
if not f[2] then
  return {"none"}
end

-- decimal text of a whole number of pico-dollars as dollars ("1500000" -> "0.0000015")
local function dollars(pico)
  local digits = string.format("%.0f", pico)
  if #digits <= 12 then digits = string.rep("0", 13 - #digits) .. digits end
  local whole, frac = string.sub(digits, 1, #digits - 12), string.sub(digits, #digits - 11)
  frac = string.gsub(frac, "0+$", "")
  if frac == "" then return whole end
  return whole .. "." .. frac
end

local pause = f[3]
local paused_now = 0
if not pause then
  local budget = cjson.decode(f[2])
  local c = redis.call("HMGET", KEYS[4], "t|pico", "t|prompt", "t|completion")
  local spent_pico = tonumber(c[1] or "0")
  local spent_tokens = tonumber(c[2] or "0") + tonumber(c[3] or "0")
  local held_pico, held_tokens, others = 0, 0, 0
  local est_pico, est_tokens = 1, 1  -- a step's start: anything left lets it start
  local known = false
  if ARGV[8] ~= "" then
    local holds = redis.call("HGETALL", KEYS[5])
    for i = 1, #holds, 2 do
      local p, t, untl = string.match(holds[i + 1], "^(%d+)|(%d+)|(%d+)$")
      if tonumber(untl) < now then
        redis.call("HDEL", KEYS[5], holds[i])  -- its worker died mid-call
      elseif holds[i] ~= ARGV[8] then
        held_pico, held_tokens = held_pico + tonumber(p), held_tokens + tonumber(t)
        others = others + 1
      end
    end
    local x = redis.call("HMGET", KEYS[4], "x|" .. ARGV[10] .. "|pico", "x|" .. ARGV[10] .. "|tokens")
    if x[1] or x[2] then
      known = true
      est_pico = math.max(tonumber(x[1] or "0"), 1)
      est_tokens = math.max(tonumber(x[2] or "0"), 1)
    elseif others > 0 then
      return {"busy"}
    end
  end
  local reasons = {}
  local max_pico, max_tokens = budget["maxPico"], budget["maxTokens"]
  if max_pico and spent_pico + held_pico + est_pico > tonumber(max_pico) then
    table.insert(reasons, "$" .. dollars(tonumber(max_pico)) .. " reached after $"
      .. dollars(spent_pico) .. " spent")
  end
  if max_tokens and spent_tokens + held_tokens + est_tokens > tonumber(max_tokens) then
    table.insert(reasons, string.format("%.0f tokens reached after %.0f used", max_tokens,
      spent_tokens))
  end
  if #reasons == 0 then
    if ARGV[8] ~= "" then
      local hold_pico, hold_tokens = 0, 0  -- unknown: held as "in flight", at no cost
      if known then hold_pico, hold_tokens = est_pico, est_tokens end
      redis.call("HSET", KEYS[5], ARGV[8], string.format("%.0f|%.0f|%s", hold_pico, hold_tokens,
        ARGV[9]))
    end
    return {"ok"}
  end
  local request = cjson.decode(ARGV[11])
  request["question"] = "Budget " .. table.concat(reasons, "; ") .. ". " .. request["question"]
  request["spentUsd"] = dollars(spent_pico)
  request["spentTokens"] = spent_tokens
  if max_pico then request["maxCostUsd"] = dollars(tonumber(max_pico)) end
  if max_tokens then request["maxTokens"] = max_tokens end
  pause = cjson.encode(request)
  redis.call("HSET", KEYS[1], "budgetPause", pause)
  paused_now = 1
end

-- park the step on the session's budget request
local handed = release(rec["agentId"], member, now, tonumber(ARGV[7]))
redis.call("ZREM", deadlines_key(), member)
if token ~= "" then
  rec["attempts"] = math.max((tonumber(rec["attempts"]) or 1) - 1, 0)
  rec["agentAttempts"] = math.max((tonumber(rec["agentAttempts"]) or 1) - 1, 0)
end
rec["status"] = "waiting_for_input"
rec["token"], rec["leaseUntil"] = nil, nil
redis.call("HSET", KEYS[2], step_id, cjson.encode(rec))
redis.call("HSET", KEYS[3], step_id, pause)
redis.call("HINCRBY", KEYS[1], "waitingSteps", 1)
set_session_status(sid, KEYS[1], "waiting_for_input", now)
redis.call("ZADD", input_deadlines_key(), tonumber(cjson.decode(pause)["deadlineMs"]), member)
if ARGV[8] ~= "" then
  redis.call("HDEL", KEYS[5], ARGV[8])
end
return {"parked", handed, paused_now, pause}
