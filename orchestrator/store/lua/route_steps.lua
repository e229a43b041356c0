-- route_steps: give queued steps an agent with a free slot, in the caller's order of preference,
-- or park them in the waiting list of their first capability when every candidate is full
-- (waitingFor WAITING_FOR_CAPACITY), or when there is no candidate at all (WAITING_FOR_AGENT,
-- with a schedule deadline: the session's scheduleTimeoutMs from now).
-- Deciding and reserving in one script means a slot freed meanwhile is never missed: either this
-- script sees it, or the release that frees it finds the step already waiting.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] now (ms)   ARGV[4] reservation (ms)
-- ARGV[5] waiting capability   ARGV[6] JSON list of step ids (same requirements)
-- ARGV[7] JSON list of capabilities   ARGV[8] agent type or ""   ARGV[9] JSON list of excluded
-- ARGV[10] the agent the steps are pinned to (the session's agentOverrides), or "": a parked
--   step then waits for that agent's capacity only   ARGV[11..] candidate agent ids, most
--   preferred first
-- Also (prelude): the candidates' hashes and slots, the deadlines and schedule deadlines, the
-- waiting list.
--
-- Returns {"ok", {step id, agent id, queue, ...}, {waiting step id, ...},
--   {step id waiting for an agent, its schedule deadline (ms, 0: none), ...}} | {"ended", status}
local sid, now, reserve = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local status = redis.call("HGET", KEYS[1], "status")
if status ~= "executing" and status ~= "waiting_for_input" then
  return {"ended", status or "missing"}
end
local reserved, waiting, unscheduled = {}, {}, {}
local entry_base = {caps = cjson.decode(ARGV[7]), ex = cjson.decode(ARGV[9]), s = sid}
if ARGV[8] ~= "" then entry_base["type"] = ARGV[8] end
if ARGV[10] ~= "" then entry_base["only"] = ARGV[10] end
for _, step_id in ipairs(cjson.decode(ARGV[6])) do
  local raw = redis.call("HGET", KEYS[2], step_id)
  local rec = raw and cjson.decode(raw)
  if rec and rec["status"] == "queued" and rec["waitingFor"] ~= WAITING_FOR_CAPACITY
    and rec["waitingFor"] ~= WAITING_FOR_AGENT then
    local placed = false
    for i = 11, #ARGV do
      local agent_id = ARGV[i]
      local akey, skey = agent_key(agent_id), agent_slots_key(agent_id)
      if takes_work(akey, now)
        and live_load(skey, now) < tonumber(redis.call("HGET", akey, "maxLoad") or "0") then
        redis.call("ZADD", skey, now + reserve, sid .. "|" .. step_id)
        redis.call("ZADD", deadlines_key(), now + reserve, sid .. "|" .. step_id)
        rec["agentId"] = agent_id
        rec["queue"] = agent_queue(akey, agent_id)
        rec["queuedAt"] = now
        redis.call("HSET", KEYS[2], step_id, cjson.encode(rec))
        table.insert(reserved, step_id)
        table.insert(reserved, agent_id)
        table.insert(reserved, rec["queue"])
        placed = true
        break
      end
    end
    if not placed then
      entry_base["t"] = step_id
      park(sid, KEYS[2], step_id, rec, waiting_key(ARGV[5]), entry_base, now, #ARGV < 11)
      table.insert(waiting, step_id)
      if rec["waitingFor"] == WAITING_FOR_AGENT then
        table.insert(unscheduled, step_id)
        table.insert(unscheduled, rec["scheduleDeadline"] or 0)
      end
    end
  end
end
return {"ok", reserved, waiting, unscheduled}
