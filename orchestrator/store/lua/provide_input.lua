-- provide_input: record the operator's answer to a step waiting for input and queue the step to
-- run again (the agent re-runs from its start and finds the answer in its input). The caller
-- validated the answer and routes the step.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] input requests hash   KEYS[4] answers hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] step id   ARGV[4] now (ms)
-- ARGV[5] answer JSON   ARGV[6] reservation (ms)   ARGV[7] how ("operator" | "default")
-- ARGV[#ARGV] the log entries, written only with an "ok" reply (lua/_logs.lua)
-- Also (prelude): the deadlines and input deadlines, the status indexes.
--
-- Returns {"ok", step record JSON} | {"not_waiting", step status} | {"ended", session status}
local sid, step_id, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local member = sid .. "|" .. step_id
local session_status = redis.call("HGET", KEYS[1], "status")
if session_status ~= "executing" and session_status ~= "waiting_for_input" then
  redis.call("ZREM", input_deadlines_key(), member)
  return {"ended", session_status or "missing"}
end
local rec = cjson.decode(redis.call("HGET", KEYS[2], step_id) or "{}")
if rec["status"] ~= "waiting_for_input" then
  return {"not_waiting", rec["status"] or "missing"}
end
redis.call("HSET", KEYS[4], step_id, ARGV[5])
redis.call("HDEL", KEYS[3], step_id)
redis.call("ZREM", input_deadlines_key(), member)
rec["status"] = "queued"
rec["agentId"] = nil
rec["queuedAt"] = now
rec["inputBy"] = ARGV[7]
local encoded = cjson.encode(rec)
redis.call("HSET", KEYS[2], step_id, encoded)
redis.call("ZADD", deadlines_key(), now + tonumber(ARGV[6]), member)
if redis.call("HINCRBY", KEYS[1], "waitingSteps", -1) <= 0 then
  set_session_status(sid, KEYS[1], "executing", now)
end
write_logs()
return {"ok", encoded}
