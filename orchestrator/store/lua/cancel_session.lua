-- cancel_session: end a session as cancelled. Steps that have not started are cancelled and their
-- reservations freed (handed to waiting steps); running steps are marked cancelled so their
-- results are refused, and returned so the caller can revoke them. A running step keeps its slot
-- until its lease lapses (the run may still be stopping), so maxLoad holds throughout.
-- (prepended: prelude)
--
-- With ARGV[5] = "failed" (a budget stop) the session ends failed instead, and each step parked
-- on the budget (its input request's reason is "budget") fails with the error ARGV[6] (a
-- StepErrorRecord JSON; its stepId and jobId are filled in here), appended to the errors list.
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] input requests hash   KEYS[4] errors list
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] now (ms)   ARGV[4] reservation (ms)
-- ARGV[5] the session's end status ("cancelled" | "failed")   ARGV[6] error JSON ("failed")
-- ARGV[#ARGV] the log entries, written only with an "ok" reply (lua/_logs.lua)
-- Also (prelude): the deadlines and schedule deadlines, the agents' slots and waiting lists
-- (freed reservations are handed over; the session's waiting entries are removed), the status
-- indexes, the step metrics.
--
-- Returns {"ok", {cancelled step id, ...}, {running step id, ...}, {handed sid, step, queue,
--   agent, ...}} | {"already"} | {"finished", status} | {"missing"}
local sid, now = ARGV[2], tonumber(ARGV[3])
local status = redis.call("HGET", KEYS[1], "status")
if not status then return {"missing"} end
local ending = ARGV[5]
if status == ending then return {"already"} end
if status == "completed" or status == "failed" or status == "cancelled" then
  return {"finished", status}
end
set_session_status(sid, KEYS[1], ending, now)  -- first: freed slots skip it
redis.call("HDEL", KEYS[1], "budgetPause")
local cancelled, running, handed = {}, {}, {}
local gone, gone_caps = {}, {}
local all = redis.call("HGETALL", KEYS[2])
for i = 1, #all, 2 do
  local step_id, rec = all[i], cjson.decode(all[i + 1])
  local member = sid .. "|" .. step_id
  local was = rec["status"]
  if was == "pending" or was == "queued" or was == "waiting_for_input" or was == "running" then
    redis.call("ZREM", deadlines_key(), member)
    note_unparked(gone, gone_caps, member, rec)
    if was == "queued" and rec["agentId"] then
      for _, item in ipairs(release(rec["agentId"], member, now, tonumber(ARGV[4]))) do
        table.insert(handed, item)
      end
    end
    local request = was == "waiting_for_input" and redis.call("HGET", KEYS[3], step_id)
    if ending == "failed" and request and cjson.decode(request)["reason"] == "budget" then
      local err = cjson.decode(ARGV[6])
      err["stepId"], err["jobId"] = step_id, sid .. "." .. step_id
      rec["status"], rec["error"] = "failed", err["message"]
      redis.call("RPUSH", KEYS[4], cjson.encode(err))
      redis.call("HINCRBY", KEYS[1], "failedTasks", 1)
      count_step(first_capability(rec), "failed", nil)
    else
      rec["status"] = "cancelled"
      count_step(first_capability(rec), "cancelled", nil)
    end
    rec["finishedAt"] = now
    rec["token"], rec["leaseUntil"], rec["waitingFor"] = nil, nil, nil
    redis.call("HSET", KEYS[2], step_id, cjson.encode(rec))
    redis.call("HINCRBY", KEYS[1], "finishedTasks", 1)
    if was == "running" then table.insert(running, step_id) else table.insert(cancelled, step_id) end
  end
end
unpark_all(gone, gone_caps)
write_logs()
return {"ok", cancelled, running, handed}
