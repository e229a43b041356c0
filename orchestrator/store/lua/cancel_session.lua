-- cancel_session: end a session as cancelled. Steps that have not started are cancelled and their
-- reservations freed (handed to waiting steps); running steps are marked cancelled so their
-- results are refused, and returned so the caller can revoke them. A running step keeps its slot
-- until its lease lapses (the run may still be stopping), so maxLoad holds throughout.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] now (ms)   ARGV[4] reservation (ms)
-- Also (prelude): the deadlines and schedule deadlines, the agents' slots and waiting lists
-- (freed reservations are handed over; the session's waiting entries are removed), the status
-- indexes, the step metrics.
--
-- Returns {"ok", {cancelled step id, ...}, {running step id, ...}, {handed sid, step, queue,
--   agent, ...}} | {"already"} | {"finished", status} | {"missing"}
local sid, now = ARGV[2], tonumber(ARGV[3])
local status = redis.call("HGET", KEYS[1], "status")
if not status then return {"missing"} end
if status == "cancelled" then return {"already"} end
if status == "completed" or status == "failed" then return {"finished", status} end
set_session_status(sid, KEYS[1], "cancelled", now)  -- first: freed slots skip it
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
    rec["status"] = "cancelled"
    rec["finishedAt"] = now
    count_step(first_capability(rec), "cancelled", nil)
    rec["token"], rec["leaseUntil"], rec["waitingFor"] = nil, nil, nil
    redis.call("HSET", KEYS[2], step_id, cjson.encode(rec))
    redis.call("HINCRBY", KEYS[1], "finishedTasks", 1)
    if was == "running" then table.insert(running, step_id) else table.insert(cancelled, step_id) end
  end
end
unpark_all(gone, gone_caps)
return {"ok", cancelled, running, handed}
