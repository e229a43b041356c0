-- claim_step: a worker takes a released step for one run, and reads the step's input in the
-- same round trip. The caller that gets "ok" owns the step until leaseUntil; it must renew the
-- lease while it works (renew_lease) and finish with complete_step, fail_step or requeue_step.
--
-- KEYS[1] session hash        KEYS[2] steps hash         KEYS[3] plan hash
-- KEYS[4] depends hash        KEYS[5] results hash       KEYS[6] shared state hash
-- KEYS[7] agent hash
-- ARGV[1] step id   ARGV[2] run token   ARGV[3] now (ms)   ARGV[4] lease (ms)   ARGV[5] agent id
--
-- Returns one of:
--   {"ok", attempt, step JSON, goal, initial context JSON, {state k, v, ...}, {dep id, output, ...},
--    max attempts}
--   {"missing"}                 no such session or step
--   {"ended", session status}   the session is over: do not run
--   {"finished", step status}   the step already ended (a duplicate delivery): do not run
--   {"leased", ms left}         another live run owns the step: try again after the lease
--   {"not_ready", step status}  the step is pending or waiting for input: do not run
local session_status = redis.call("HGET", KEYS[1], "status")
local raw = redis.call("HGET", KEYS[2], ARGV[1])
if not session_status or not raw then
  return {"missing"}
end
if session_status == "completed" or session_status == "failed" or session_status == "cancelled" then
  return {"ended", session_status}
end
local rec = cjson.decode(raw)
local status = rec["status"]
local now = tonumber(ARGV[3])
if status == "completed" or status == "failed" or status == "skipped" or status == "cancelled" then
  return {"finished", status}
end
if status == "running" and tonumber(rec["leaseUntil"]) > now then
  return {"leased", tostring(tonumber(rec["leaseUntil"]) - now)}
end
if status ~= "queued" and status ~= "running" then
  return {"not_ready", status}
end
if status ~= "running" or rec["agentId"] ~= ARGV[5] then
  -- a takeover by the same agent keeps the slot the dead run held
  if redis.call("EXISTS", KEYS[7]) == 1 then
    redis.call("HINCRBY", KEYS[7], "currentLoad", 1)
  end
end
rec["status"] = "running"
rec["attempts"] = (tonumber(rec["attempts"]) or 0) + 1
rec["token"] = ARGV[2]
rec["leaseUntil"] = now + tonumber(ARGV[4])
rec["startedAt"] = now
rec["agentId"] = ARGV[5]
rec["finishedAt"] = nil
redis.call("HSET", KEYS[2], ARGV[1], cjson.encode(rec))

local outputs = {}
local deps = cjson.decode(redis.call("HGET", KEYS[4], ARGV[1]) or "[]")
for _, dep in ipairs(deps) do
  table.insert(outputs, dep)
  table.insert(outputs, redis.call("HGET", KEYS[5], dep) or "null")
end
return {
  "ok",
  rec["attempts"],
  redis.call("HGET", KEYS[3], ARGV[1]),
  redis.call("HGET", KEYS[1], "goal"),
  redis.call("HGET", KEYS[1], "initialContext") or "{}",
  redis.call("HGETALL", KEYS[6]),
  outputs,
  redis.call("HGET", KEYS[1], "maxAttempts") or "1",
}
