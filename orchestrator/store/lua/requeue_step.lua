-- requeue_step: give a step back for another attempt. The run must own the step.
--   retry    the same agent tries again after a backoff: its slot stays reserved until then
--   reroute  another agent should take it (fallback): this agent is added to failedAgents, its
--            slot is freed (and handed to a waiting step), and the caller routes the step again
-- If the session ended meanwhile, the step is cancelled instead.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] agent slots
-- ARGV[1] key prefix   ARGV[2] step id   ARGV[3] run token   ARGV[4] now (ms)
-- ARGV[5] error message ("" for none)   ARGV[6] mode (retry | reroute)   ARGV[7] slot member
-- ARGV[8] reservation (ms)   ARGV[9] backoff before the retry (ms)
-- ARGV[#ARGV] the log entries, written only with an "ok" reply (lua/_logs.lua)
-- Also (prelude): the deadlines, the waiting lists (a freed slot is handed over), the step
-- metrics.
--
-- Returns {"ok", attempts so far, {failed agent id, ...}, {handed sid, step, queue, agent, ...}}
--   | {"ended", session status} | {"stale", step status} | {"missing"}
local raw = redis.call("HGET", KEYS[2], ARGV[2])
local session_status = redis.call("HGET", KEYS[1], "status")
if not raw or not session_status then
  return {"missing"}
end
local rec = cjson.decode(raw)
if rec["status"] ~= "running" or rec["token"] ~= ARGV[3] then
  return {"stale", rec["status"]}
end
local now, reserve = tonumber(ARGV[4]), tonumber(ARGV[8])
local agent_id = rec["agentId"]
rec["token"] = nil
rec["leaseUntil"] = nil
if ARGV[5] ~= "" then
  rec["error"] = ARGV[5]
end
if session_status ~= "executing" and session_status ~= "waiting_for_input" then
  release(agent_id, ARGV[7], now, reserve)
  redis.call("ZREM", deadlines_key(), ARGV[7])
  rec["status"] = "cancelled"
  rec["finishedAt"] = now
  redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))
  redis.call("HINCRBY", KEYS[1], "finishedTasks", 1)
  return {"ended", session_status}
end
local handed = {}
count_step(first_capability(rec), ARGV[6] == "reroute" and "fallback" or "retried", nil)
count_agent(agent_id, rec, ARGV[6] == "reroute" and "fallback" or "retried", now,
  {run_ms = rec["startedAt"] and (now - tonumber(rec["startedAt"])) or nil})
rec["status"] = "queued"
rec["queuedAt"] = now
if ARGV[6] == "reroute" then
  local failed = rec["failedAgents"] or {}
  table.insert(failed, agent_id)
  rec["failedAgents"] = failed
  rec["agentAttempts"] = 0
  rec["agentId"] = nil
  handed = release(agent_id, ARGV[7], now, reserve)
  redis.call("ZADD", deadlines_key(), now + reserve, ARGV[7])
else
  redis.call("ZADD", KEYS[3], now + tonumber(ARGV[9]) + reserve, ARGV[7])
  redis.call("ZADD", deadlines_key(), now + tonumber(ARGV[9]) + reserve, ARGV[7])
end
redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))
write_logs()
return {"ok", rec["attempts"], rec["failedAgents"] or {}, handed}
