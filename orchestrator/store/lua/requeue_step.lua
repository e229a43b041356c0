-- requeue_step: give a step back to its queue for another attempt (retry after a retryable
-- error, or a forward to another agent). The run must own the step. Frees the agent's slot.
-- If the session ended meanwhile, the step is cancelled instead.
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] agent hash
-- ARGV[1] step id   ARGV[2] run token   ARGV[3] now (ms)   ARGV[4] error message ("" for none)
-- ARGV[5] queue the step goes to next
--
-- Returns {"ok", attempts so far} | {"ended", session status} | {"stale", step status} | {"missing"}
local raw = redis.call("HGET", KEYS[2], ARGV[1])
local session_status = redis.call("HGET", KEYS[1], "status")
if not raw or not session_status then
  return {"missing"}
end
local rec = cjson.decode(raw)
if rec["status"] ~= "running" or rec["token"] ~= ARGV[2] then
  return {"stale", rec["status"]}
end
local now = tonumber(ARGV[3])
if tonumber(redis.call("HGET", KEYS[3], "currentLoad") or "0") > 0 then
  redis.call("HINCRBY", KEYS[3], "currentLoad", -1)
end
rec["token"] = nil
rec["leaseUntil"] = nil
if ARGV[4] ~= "" then
  rec["error"] = ARGV[4]
end
if session_status ~= "executing" and session_status ~= "waiting_for_input" then
  rec["status"] = "cancelled"
  rec["finishedAt"] = now
  redis.call("HSET", KEYS[2], ARGV[1], cjson.encode(rec))
  redis.call("HINCRBY", KEYS[1], "finishedTasks", 1)
  return {"ended", session_status}
end
rec["status"] = "queued"
rec["queuedAt"] = now
rec["queue"] = ARGV[5]
redis.call("HSET", KEYS[2], ARGV[1], cjson.encode(rec))
return {"ok", rec["attempts"]}
