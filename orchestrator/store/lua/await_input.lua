-- await_input: a running step asks an operator for input. It stops holding anything: its slot is
-- freed (and handed to a waiting step), its deadline removed, its token dropped. The step and
-- the session show waiting_for_input until provide_input answers (or the input deadline passes).
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] input requests hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] step id   ARGV[4] run token   ARGV[5] now (ms)
-- ARGV[6] reservation (ms)   ARGV[7] request JSON   ARGV[8] input deadline (ms, 0 for none)
-- ARGV[#ARGV] the log entries, written only with an "ok" reply (lua/_logs.lua)
-- Also (prelude): the deadlines and input deadlines, the waiting lists (a freed slot is handed
-- over), the status indexes.
--
-- Returns {"ok", {handed sid, step, queue, agent, ...}} | {"stale", status} | {"ended", status}
local sid, step_id, now = ARGV[2], ARGV[3], tonumber(ARGV[5])
local member = sid .. "|" .. step_id
local rec = cjson.decode(redis.call("HGET", KEYS[2], step_id) or "{}")
if rec["status"] ~= "running" or rec["token"] ~= ARGV[4] then
  return {"stale", rec["status"] or "missing"}
end
local handed = release(rec["agentId"], member, now, tonumber(ARGV[6]))
redis.call("ZREM", deadlines_key(), member)
local session_status = redis.call("HGET", KEYS[1], "status")
if session_status ~= "executing" and session_status ~= "waiting_for_input" then
  return {"ended", session_status or "missing"}
end
rec["status"] = "waiting_for_input"
rec["token"], rec["leaseUntil"] = nil, nil
redis.call("HSET", KEYS[2], step_id, cjson.encode(rec))
redis.call("HSET", KEYS[3], step_id, ARGV[7])
redis.call("HINCRBY", KEYS[1], "waitingSteps", 1)
set_session_status(sid, KEYS[1], "waiting_for_input", now)
if tonumber(ARGV[8]) > 0 then
  redis.call("ZADD", input_deadlines_key(), tonumber(ARGV[8]), member)
end
write_logs()
return {"ok", handed}
