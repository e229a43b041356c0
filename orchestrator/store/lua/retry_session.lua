-- retry_session: run a failed or cancelled session again, in the same session (its next round):
-- its failed, skipped and cancelled steps become pending again (queued when everything they
-- depend on completed), fresh (no attempts, agent, token or error); completed steps keep their
-- records, results and costs. The session is executing again, its keys no longer expire, and
-- its counters drop what was reset. The errors list keeps the earlier rounds' errors.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] depends hash   KEYS[4] remaining hash
-- KEYS[5] input requests hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] now (ms)
-- Also (prelude): the session's other keys (persisted), the status indexes.
--
-- Returns {"ok", round, {queued step id, ...}, {reset step id, ...}} | {"missing"} |
--   {"status", status} (not failed or cancelled)
local sid, now = ARGV[2], tonumber(ARGV[3])
local status = redis.call("HGET", KEYS[1], "status")
if not status then return {"missing"} end
if status ~= "failed" and status ~= "cancelled" then return {"status", status} end

local records = {}
local all = redis.call("HGETALL", KEYS[2])
for i = 1, #all, 2 do records[all[i]] = cjson.decode(all[i + 1]) end
local again = {failed = true, skipped = true, cancelled = true}
local reset, queued, failed_reset = {}, {}, 0
for step_id, rec in pairs(records) do
  if again[rec["status"]] then
    table.insert(reset, step_id)
    if rec["status"] == "failed" then failed_reset = failed_reset + 1 end
  end
end
if #reset == 0 then return {"status", status} end
table.sort(reset)

local round = redis.call("HINCRBY", KEYS[1], "round", 1)
for _, key in ipairs(session_owned_keys(sid)) do redis.call("PERSIST", key) end
for _, agent in ipairs(redis.call("SMEMBERS", private_state_index_key(sid))) do
  redis.call("PERSIST", private_state_key(sid, agent))
end
set_session_status(sid, KEYS[1], "executing", now)
redis.call("HDEL", KEYS[1], "endTime", "budgetPause")
-- (never HINCRBY by -0: Lua formats it "-0", which Redis refuses as an integer)
if failed_reset > 0 then redis.call("HINCRBY", KEYS[1], "failedTasks", -failed_reset) end
redis.call("HINCRBY", KEYS[1], "finishedTasks", -#reset)

for _, step_id in ipairs(reset) do
  local rec = records[step_id]
  local left = 0
  for _, dep in ipairs(cjson.decode(redis.call("HGET", KEYS[3], step_id) or "[]")) do
    if not records[dep] or records[dep]["status"] ~= "completed" then left = left + 1 end
  end
  redis.call("HSET", KEYS[4], step_id, left)
  local fresh = {
    status = left == 0 and "queued" or "pending",
    attempts = 0,
    queue = rec["queue"],
    title = rec["title"],
    caps = rec["caps"],
    agentType = rec["agentType"],
    parentId = rec["parentId"],
    subtasks = rec["subtasks"],
    round = round,
  }
  if left == 0 then
    fresh["queuedAt"] = now
    table.insert(queued, step_id)
  end
  redis.call("HSET", KEYS[2], step_id, cjson.encode(fresh))
  redis.call("HDEL", KEYS[5], step_id)
end
return {"ok", round, queued, reset}
