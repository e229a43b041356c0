-- complete_step: record a step's output exactly once and release the dependents whose last
-- dependency this was ("complete and release"). Frees the agent's slot and hands it to a waiting
-- step. A duplicate or stale completion changes nothing.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash   KEYS[3] children hash   KEYS[4] remaining hash
-- KEYS[5] results hash   KEYS[6] shared state hash
-- ARGV[1] key prefix   ARGV[2] step id   ARGV[3] run token   ARGV[4] now (ms)   ARGV[5] output JSON
-- ARGV[6] agent id   ARGV[7] slot member   ARGV[8] reservation (ms)
-- ARGV[9] selection policy to route released steps with here, or "" to leave them to the caller
--   (a session's own "policy" field overrides it: a built-in name routes here, any other leaves
--   them to the caller, which ranks with that Python policy; so does an "agentOverrides" field,
--   whose pins the caller applies)
-- ARGV[10] round-robin rotation   ARGV[11] who writes the state updates (their updatedBy)
-- ARGV[12] the run's accounts JSON, or "": {"usage": the run's model usage (the step record's
--          "usage") or null, "reported": what the agent reported spending by itself, as decimal
--          strings {prompt, completion, pico ("" without dollars), model}, or null}; reported
--          spending is counted with the session's costs here, once, with the completion;
--          "hourExpiresAt": when this hour's costs hash expires (unix seconds)
-- ARGV[13], ARGV[14], ... shared state updates as key, value JSON (each bumps its version)
-- ARGV[#ARGV] the log entries, written only with an "ok" reply (lua/_logs.lua)
-- Also (prelude): the deadlines, the agents, their slots and capability sets (inline routing),
-- the waiting lists (a freed slot is handed over), the status indexes, the step metrics and
-- the state versions (each state update bumps one).
--
-- Returns one of:
--   {"ok", session status, {released id, its record JSON, ...}, {handed session id, step id,
--    queue, agent id, ...}, 1 if this call ended the session else 0,
--    {routed step id, agent id, queue, ...}, {parked step id, JSON list of candidates, ...}}
--   (released steps in neither of the last two lists are left for the caller to route)
--   {"duplicate"}           the step was already completed: nothing changed
--   {"stale", step status}  this run no longer owns the step (lease lost, cancelled): nothing changed
--   {"missing"}
local raw = redis.call("HGET", KEYS[2], ARGV[2])
if not raw then
  return {"missing"}
end
local rec = cjson.decode(raw)
if rec["status"] == "completed" then
  return {"duplicate"}
end
if rec["status"] ~= "running" or rec["token"] ~= ARGV[3] then
  return {"stale", rec["status"]}
end
local now = tonumber(ARGV[4])
rec["status"] = "completed"
rec["finishedAt"] = now
count_step(first_capability(rec), "completed", now - (tonumber(rec["startedAt"]) or now))
count_agent(rec["agentId"], rec, "succeeded", now, {run_ms = now - (tonumber(rec["startedAt"]) or now)})
rec["token"] = nil
rec["leaseUntil"] = nil
local reported = nil
if ARGV[12] ~= "" then
  local accounts = cjson.decode(ARGV[12])
  if type(accounts["usage"]) == "table" then
    rec["usage"] = accounts["usage"]
  end
  if type(accounts["reported"]) == "table" then
    reported = accounts["reported"]
  end
end
redis.call("HSET", KEYS[2], ARGV[2], cjson.encode(rec))
redis.call("HSET", KEYS[5], ARGV[2], ARGV[5])
for i = 13, log_argc(), 2 do
  redis.call("HSET", KEYS[6], ARGV[i], ARGV[i + 1])
  bump_state_version(sid_of(ARGV[7]), "s|" .. ARGV[i], now, ARGV[11])
end
if reported then
  local costs, totals = costs_key(sid_of(ARGV[7])), cost_totals_key()
  local user = redis.call("HGET", KEYS[1], "userId")
  local function add(hash, prefix)
    redis.call("HINCRBY", hash, prefix .. "reported", 1)
    redis.call("HINCRBY", hash, prefix .. "prompt", reported["prompt"])
    redis.call("HINCRBY", hash, prefix .. "completion", reported["completion"])
    if reported["pico"] ~= "" then
      redis.call("HINCRBY", hash, prefix .. "pico", reported["pico"])
    end
  end
  add(costs, "t|")
  add(costs, "s|" .. ARGV[2] .. "|")
  add(costs, "a|" .. ARGV[6] .. "|")
  add(costs, "m|" .. reported["model"] .. "|")
  add(totals, "am|" .. ARGV[6] .. "|" .. reported["model"] .. "|")
  if not user or user == "" then
    user = "-"
  end
  add(totals, "u|" .. user .. "|")
  local hour = cost_hour_key(math.floor(now / 3600000))
  add(hour, "u|" .. user .. "|")
  add(hour, "a|" .. ARGV[6] .. "|")
  add(hour, "m|" .. reported["model"] .. "|")
  add(hour, "ua|" .. user .. "|" .. ARGV[6] .. "|")
  add(hour, "um|" .. user .. "|" .. reported["model"] .. "|")
  redis.call("EXPIREAT", hour, tonumber(reported["hourExpiresAt"]))
end
local handed = release(ARGV[6], ARGV[7], now, tonumber(ARGV[8]))
redis.call("ZREM", deadlines_key(), ARGV[7])
redis.call("HINCRBY", KEYS[1], "completedTasks", 1)
local finished = redis.call("HINCRBY", KEYS[1], "finishedTasks", 1)

local session = redis.call("HMGET", KEYS[1], "status", "totalTasks", "policy", "agentOverrides")
local session_status = session[1]
local policy = ARGV[9]
if session[3] then  -- the session names its own policy: a built-in routes here, others in Python
  local builtin = {least_loaded = true, priority_first = true, round_robin = true}
  policy = builtin[session[3]] and session[3] or ""
end
if session[4] then  -- it pins capabilities to agents: the caller routes (engine/routing.py pin)
  policy = ""
end
local released, ended, routed, parked = {}, 0, {}, {}
local sid = sid_of(ARGV[7])
local rotation = tonumber(ARGV[10]) or 0
if session_status == "executing" or session_status == "waiting_for_input" then
  local children = cjson.decode(redis.call("HGET", KEYS[3], ARGV[2]) or "[]")
  for _, child in ipairs(children) do
    if redis.call("HINCRBY", KEYS[4], child, -1) <= 0 then
      local child_rec = cjson.decode(redis.call("HGET", KEYS[2], child))
      if child_rec["status"] == "pending" then
        child_rec["status"] = "queued"
        child_rec["queuedAt"] = now
        local agent_id, queue_or_ranked = false, nil
        if policy ~= "" then
          rotation = rotation + 1
          agent_id, queue_or_ranked = route_inline(sid, KEYS[2], child, child_rec, now,
            tonumber(ARGV[8]), policy, rotation)
        end
        if agent_id then
          table.insert(routed, child)
          table.insert(routed, agent_id)
          table.insert(routed, queue_or_ranked)
        elseif agent_id == nil then
          table.insert(parked, child)
          table.insert(parked, cjson.encode(queue_or_ranked))
        else
          redis.call("HSET", KEYS[2], child, cjson.encode(child_rec))
          -- until the caller routes it: if that never happens, the reconciler will
          redis.call("ZADD", deadlines_key(), now + tonumber(ARGV[8]), sid .. "|" .. child)
        end
        table.insert(released, child)
        table.insert(released, cjson.encode(child_rec))
      end
    end
  end
  if finished >= tonumber(session[2]) then
    if tonumber(redis.call("HGET", KEYS[1], "failedTasks") or "0") > 0 then
      session_status = "failed"
    else
      session_status = "completed"
    end
    if set_session_status(sid, KEYS[1], session_status, now) then ended = 1 end
  end
end
write_logs()
return {"ok", session_status, released, handed, ended, routed, parked}
