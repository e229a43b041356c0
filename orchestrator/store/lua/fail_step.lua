-- fail_step: record that a step failed for good, then apply the session's failure policy:
--   fail_fast  the session fails now; every step not yet started is cancelled
--   continue   every step that (transitively) depends on this one is skipped; the rest go on
-- Frees the agent's slot (handing it to a waiting step). A step failed, skipped or cancelled while
-- it waited for a slot leaves its waiting list and schedule deadline. A duplicate or stale
-- failure changes nothing.
-- With ARGV[9] = "1" (the reconciler's schedule timeout) the step fails only if it still waits
-- for an agent (waitingFor WAITING_FOR_AGENT) and no eligible agent exists; when one does (busy),
-- it waits for capacity from now on, without a schedule deadline.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] children hash   KEYS[4] errors list
-- ARGV[1] key prefix   ARGV[2] step id   ARGV[3] run token ("" when the step was never claimed)
-- ARGV[4] now (ms)   ARGV[5] error message   ARGV[6] StepError JSON for the errors list
-- ARGV[7] slot member   ARGV[8] reservation (ms)   ARGV[9] "1": only if no agent could run it
-- ARGV[#ARGV] the log entries, written only with an "ok" reply (lua/_logs.lua)
-- Also (prelude): the deadlines, schedule deadlines and input deadlines, the agents' slots and
-- the waiting lists (a freed slot is handed over; waiting entries are removed), the agents and
-- capability sets (ARGV[9]), the status indexes and the step metrics.
--
-- Returns {"ok", session status, {affected step id, ...}, {handed sid, step, queue, agent, ...},
--   1 if this call ended the session else 0}
--   | {"duplicate"} | {"stale", status} | {"missing"}
--   | {"eligible"} (ARGV[9]: an eligible agent exists; the step now waits for capacity)
local raw = redis.call("HGET", KEYS[2], ARGV[2])
if not raw then
  return {"missing"}
end
local rec = cjson.decode(raw)
local status = rec["status"]
if status == "completed" or status == "failed" or status == "skipped" or status == "cancelled" then
  return {"duplicate"}
end
if ARGV[3] ~= "" and (status ~= "running" or rec["token"] ~= ARGV[3]) then
  return {"stale", status}
end
local now = tonumber(ARGV[4])
if ARGV[9] == "1" then
  if status ~= "queued" or rec["waitingFor"] ~= WAITING_FOR_AGENT then
    redis.call("ZREM", schedule_deadlines_key(), ARGV[7])
    return {"stale", status}
  end
  local ranked = ranked_candidates(rec, now, "least_loaded", 0)
  if ranked and #ranked > 0 then
    rec["waitingFor"], rec["scheduleDeadline"] = WAITING_FOR_CAPACITY, nil
    redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))
    redis.call("ZREM", schedule_deadlines_key(), ARGV[7])
    return {"eligible"}
  end
end
local gone, gone_caps = {}, {}
note_unparked(gone, gone_caps, ARGV[7], rec)
if status == "waiting_for_input" then
  -- an input deadline passed with no default: the session stops waiting on this step
  redis.call("ZREM", input_deadlines_key(), ARGV[7])
  if redis.call("HINCRBY", KEYS[1], "waitingSteps", -1) <= 0
    and redis.call("HGET", KEYS[1], "status") == "waiting_for_input" then
    set_session_status(sid_of(ARGV[7]), KEYS[1], "executing", now)
  end
end
local handed = release(rec["agentId"], ARGV[7], now, tonumber(ARGV[8]))
redis.call("ZREM", deadlines_key(), ARGV[7])
rec["status"] = "failed"
rec["finishedAt"] = now
count_step(first_capability(rec), "failed",
  rec["startedAt"] and (now - tonumber(rec["startedAt"])) or nil)
if ARGV[3] ~= "" then  -- a run gave up: the agent's failure (not an operator's or the clock's)
  local error_type = cjson.decode(ARGV[6])["errorType"]
  count_agent(rec["agentId"], rec, "failed", now, {
    run_ms = rec["startedAt"] and (now - tonumber(rec["startedAt"])) or nil,
    error_type = type(error_type) == "string" and error_type or "error",
  })
end
rec["error"] = ARGV[5]
rec["token"] = nil
rec["leaseUntil"] = nil
redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))
redis.call("RPUSH", KEYS[4], ARGV[6])
redis.call("HINCRBY", KEYS[1], "failedTasks", 1)
local finished = redis.call("HINCRBY", KEYS[1], "finishedTasks", 1)

local session_status = redis.call("HGET", KEYS[1], "status")
local affected = {}
if session_status ~= "executing" and session_status ~= "waiting_for_input" then
  unpark_all(gone, gone_caps)
  write_logs()
  return {"ok", session_status, affected, handed, 0}
end
local function finish_step(step_id, step_rec, new_status)
  step_rec["status"] = new_status
  step_rec["finishedAt"] = now
  count_step(first_capability(step_rec), new_status, nil)
  local member = string.sub(ARGV[7], 1, string.find(ARGV[7], "|", 1, true)) .. step_id
  redis.call("ZREM", deadlines_key(), member)
  note_unparked(gone, gone_caps, member, step_rec)
  if step_rec["agentId"] and step_rec["status"] == "cancelled" then
    for _, item in ipairs(release(step_rec["agentId"], member, now, tonumber(ARGV[8]))) do
      table.insert(handed, item)
    end
  end
  redis.call("HSET", KEYS[2], step_id, cjson.encode(step_rec))
  table.insert(affected, step_id)
  finished = redis.call("HINCRBY", KEYS[1], "finishedTasks", 1)
end
if redis.call("HGET", KEYS[1], "failurePolicy") == "continue" then
  local frontier = cjson.decode(redis.call("HGET", KEYS[3], ARGV[2]) or "[]")
  while #frontier > 0 do
    local step_id = table.remove(frontier)
    local step_rec = cjson.decode(redis.call("HGET", KEYS[2], step_id))
    if step_rec["status"] == "pending" then
      finish_step(step_id, step_rec, "skipped")
      for _, child in ipairs(cjson.decode(redis.call("HGET", KEYS[3], step_id) or "[]")) do
        table.insert(frontier, child)
      end
    end
  end
  if finished >= tonumber(redis.call("HGET", KEYS[1], "totalTasks")) then
    session_status = "failed"
  end
else
  local all = redis.call("HGETALL", KEYS[2])
  for i = 1, #all, 2 do
    local step_rec = cjson.decode(all[i + 1])
    if step_rec["status"] == "pending" or step_rec["status"] == "queued" then
      finish_step(all[i], step_rec, "cancelled")
    end
  end
  session_status = "failed"
end
unpark_all(gone, gone_caps)
local ended = 0
if session_status == "failed" then
  if set_session_status(sid_of(ARGV[7]), KEYS[1], "failed", now) then ended = 1 end
end
write_logs()
return {"ok", session_status, affected, handed, ended}
