-- claim_step: a worker takes a step for one run of one agent, and reads the step's input in the
-- same round trip. The caller that gets "ok" owns the step until leaseUntil; it must renew the
-- lease while it works (renew_lease) and finish with complete_step, fail_step or requeue_step.
-- The agent's slot for the step (reserved when the step was routed) becomes the run's lease; a
-- step that arrives without a reservation takes a free slot, or gets "full".
-- (prepended: prelude)
--
-- KEYS[1] session hash        KEYS[2] steps hash         KEYS[3] plan hash
-- KEYS[4] depends hash        KEYS[5] results hash       KEYS[6] shared state hash
-- KEYS[7] agent hash          KEYS[8] agent slots        KEYS[9] operator answers hash
-- ARGV[1] key prefix   ARGV[2] step id   ARGV[3] run token   ARGV[4] now (ms)   ARGV[5] lease (ms)
-- ARGV[6] agent id   ARGV[7] slot member ("<session id>|<step id>")   ARGV[8] session id
-- ARGV[#ARGV] the log entries, written only with an "ok" reply (lua/_logs.lua)
-- Also (prelude): the deadlines sorted set, the session's costs hash (its budget).
--
-- Returns one of:
--   {"ok", attempt, step JSON, goal, initial context JSON, {state k, v, ...}, {dep id, output, ...},
--    max attempts, attempt on this agent, queue, operator answer JSON or false,
--    {subtask id, ...}, sub-plans returned so far}
--   {"missing"}                 no such session or step
--   {"ended", session status}   the session is over: do not run
--   {"finished", step status}   the step already ended (a duplicate delivery): do not run
--   {"leased", ms left}         another live run owns the step: try again after the lease
--   {"not_ready", step status}  the step is pending or waiting: do not run
--   {"full"}                    no reservation and the agent has no free slot: route it again
--   {"budget"}                  the session is paused on its budget, or has spent it: the
--                               step must not start (budget_gate.lua parks it)
local session = redis.call(
  "HMGET", KEYS[1], "status", "goal", "initialContext", "maxAttempts", "budget", "budgetPause"
)
local session_status = session[1]
local raw = redis.call("HGET", KEYS[2], ARGV[2])
if not session_status or not raw then
  return {"missing"}
end
if session_status == "completed" or session_status == "failed" or session_status == "cancelled" then
  return {"ended", session_status}
end
local rec = cjson.decode(raw)
local status = rec["status"]
local now = tonumber(ARGV[4])
if status == "completed" or status == "failed" or status == "skipped" or status == "cancelled" then
  return {"finished", status}
end
if status == "running" and tonumber(rec["leaseUntil"]) > now then
  return {"leased", tostring(tonumber(rec["leaseUntil"]) - now)}
end
if (status ~= "queued" and status ~= "running") or rec["waitingFor"] then
  return {"not_ready", status}
end
if session[5] and status == "queued" then
  if session[6] then return {"budget"} end
  local budget = cjson.decode(session[5])
  local c = redis.call("HMGET", costs_key(ARGV[8]), "t|pico", "t|prompt", "t|completion")
  if (budget["maxPico"] and tonumber(c[1] or "0") >= tonumber(budget["maxPico"]))
      or (budget["maxTokens"]
        and tonumber(c[2] or "0") + tonumber(c[3] or "0") >= tonumber(budget["maxTokens"])) then
    return {"budget"}
  end
end
local reserved = redis.call("ZSCORE", KEYS[8], ARGV[7])
if not reserved or rec["agentId"] ~= ARGV[6] then
  if live_load(KEYS[8], now) >= tonumber(redis.call("HGET", KEYS[7], "maxLoad") or "0") then
    if status == "running" then
      -- the previous run's lease expired: the step is queued again, for routing
      rec["status"], rec["token"], rec["leaseUntil"], rec["agentId"] = "queued", nil, nil, nil
      redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))
    end
    return {"full"}
  end
end
redis.call("ZADD", KEYS[8], now + tonumber(ARGV[5]), ARGV[7])
redis.call("ZADD", deadlines_key(), now + tonumber(ARGV[5]), ARGV[7])
if rec["agentId"] ~= ARGV[6] then
  rec["agentAttempts"] = 0
end
count_agent(ARGV[6], rec, "started", now,
  {wait_ms = rec["queuedAt"] and math.max(now - tonumber(rec["queuedAt"]), 0) or nil})
rec["status"] = "running"
rec["attempts"] = (tonumber(rec["attempts"]) or 0) + 1
rec["agentAttempts"] = (tonumber(rec["agentAttempts"]) or 0) + 1
rec["token"] = ARGV[3]
rec["leaseUntil"] = now + tonumber(ARGV[5])
rec["startedAt"] = now
rec["agentId"] = ARGV[6]
rec["finishedAt"] = nil
redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))

local outputs = {}
local deps = cjson.decode(redis.call("HGET", KEYS[4], ARGV[2]) or "[]")
if #deps > 0 then
  -- one HMGET for every dependency's output (a 50-way fan-in is one command, not 50)
  local values = redis.call("HMGET", KEYS[5], unpack(deps))
  for i, dep in ipairs(deps) do
    table.insert(outputs, dep)
    table.insert(outputs, values[i] or "null")
  end
end
write_logs()
return {
  "ok",
  rec["attempts"],
  redis.call("HGET", KEYS[3], ARGV[2]),
  session[2],
  session[3] or "{}",
  redis.call("HGETALL", KEYS[6]),
  outputs,
  session[4] or "1",
  rec["agentAttempts"],
  rec["queue"] or "",
  redis.call("HGET", KEYS[9], ARGV[2]),
  rec["subtasks"] or {},
  #(rec["subplans"] or {}),
}
