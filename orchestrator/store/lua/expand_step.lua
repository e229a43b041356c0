-- expand_step: a running step returned a sub-plan. Its new steps join the session under it: those
-- whose dependencies are all done are queued (the caller routes them), the rest wait as pending.
-- The parent goes back to pending until its new subtasks complete, then runs again with their
-- outputs. Its slot is freed (and handed to a waiting step). A stale run changes nothing.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] plan hash   KEYS[4] depends hash
-- KEYS[5] children hash  KEYS[6] remaining hash   KEYS[7] sub-plans list
-- ARGV[1] key prefix   ARGV[2] parent step id   ARGV[3] run token   ARGV[4] now (ms)
-- ARGV[5] parent's slot member   ARGV[6] reservation (ms)   ARGV[7] sub-plan fingerprint
-- ARGV[8] sub-plan document JSON (appended to the sub-plans list, for snapshots)
-- ARGV[9] JSON list of the sub-plan's top-level step ids (the parent's new subtasks)
-- ARGV[10..] per new step, 6 values: id, PlanStep JSON, depends JSON, children JSON,
--   number of dependencies not yet done, initial record JSON (status pending)
-- Also (prelude): the deadlines, and the waiting lists and agent slots of a freed slot's handoff.
--
-- Returns {"ok", {released id, its record JSON, ...}, {handed sid, step, queue, agent, ...}}
--   | {"stale", step status} | {"ended", session status} | {"conflict", step id} | {"missing"}
local now, reserve = tonumber(ARGV[4]), tonumber(ARGV[6])
local session_status = redis.call("HGET", KEYS[1], "status")
local raw = redis.call("HGET", KEYS[2], ARGV[2])
if not session_status or not raw then
  return {"missing"}
end
if session_status ~= "executing" and session_status ~= "waiting_for_input" then
  return {"ended", session_status}
end
local rec = cjson.decode(raw)
if rec["status"] ~= "running" or rec["token"] ~= ARGV[3] then
  return {"stale", rec["status"]}
end
for i = 10, #ARGV, 6 do
  if redis.call("HEXISTS", KEYS[2], ARGV[i]) == 1 then
    return {"conflict", ARGV[i]}
  end
end

local sid = sid_of(ARGV[5])
local released, new_ids = {}, {}
for i = 10, #ARGV, 6 do
  local step_id, remaining = ARGV[i], tonumber(ARGV[i + 4])
  redis.call("HSET", KEYS[3], step_id, ARGV[i + 1])
  redis.call("HSET", KEYS[4], step_id, ARGV[i + 2])
  redis.call("HSET", KEYS[5], step_id, ARGV[i + 3])
  redis.call("HSET", KEYS[6], step_id, remaining)
  local encoded = ARGV[i + 5]
  if remaining == 0 then
    local new_rec = cjson.decode(encoded)
    new_rec["status"] = "queued"
    new_rec["queuedAt"] = now
    encoded = cjson.encode(new_rec)
    table.insert(released, step_id)
    table.insert(released, encoded)
    -- until the caller routes it: if that never happens, the reconciler will
    redis.call("ZADD", deadlines_key(), now + reserve, sid .. "|" .. step_id)
  end
  redis.call("HSET", KEYS[2], step_id, encoded)
  table.insert(new_ids, step_id)
end

local top = cjson.decode(ARGV[9])
local depends = cjson.decode(redis.call("HGET", KEYS[4], ARGV[2]) or "[]")
local subtasks = rec["subtasks"] or {}
local subplans = rec["subplans"] or {}
for _, step_id in ipairs(top) do
  table.insert(depends, step_id)
  table.insert(subtasks, step_id)
end
table.insert(subplans, ARGV[7])
redis.call("HSET", KEYS[4], ARGV[2], cjson.encode(depends))
redis.call("HSET", KEYS[6], ARGV[2], #top)

local handed = release(rec["agentId"], ARGV[5], now, reserve)
redis.call("ZREM", deadlines_key(), ARGV[5])
rec["status"] = "pending"
-- its next run starts a fresh count: retries and dead-lettering count runs since the sub-plan
rec["attempts"], rec["agentAttempts"] = 0, 0
rec["subtasks"] = subtasks
rec["subplans"] = subplans
rec["token"], rec["leaseUntil"], rec["agentId"], rec["queuedAt"] = nil, nil, nil, nil
redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))

local order = cjson.decode(redis.call("HGET", KEYS[1], "jobOrder"))
for _, step_id in ipairs(new_ids) do
  table.insert(order, step_id)
end
redis.call("HSET", KEYS[1], "jobOrder", cjson.encode(order))
redis.call("HINCRBY", KEYS[1], "totalTasks", #new_ids)
redis.call("RPUSH", KEYS[7], ARGV[8])
return {"ok", released, handed}
