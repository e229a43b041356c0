-- recover_step: the reconciler's move for one step whose deadline passed: its run died (lease
-- expired) or its message never led to a claim (lost dispatch, dead agent). Frees whatever slot
-- it held and queues it again for routing, or dead-letters it after too many deliveries.
-- (prepended: prelude)
--
-- KEYS[1] session hash   KEYS[2] steps hash
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] step id   ARGV[4] now (ms)
-- ARGV[5] reservation (ms)   ARGV[6] most deliveries before dead-lettering
-- Also (prelude): the deadlines, the agent's slots and waiting lists (a freed slot is handed over).
--
-- Returns {"reroute", step record JSON, {handed sid, step, queue, agent, ...}}
--   | {"dead", deliveries} | {"early"} (deadline moved: still alive) | {"gone"} (nothing to do)
local now = tonumber(ARGV[4])
local member = ARGV[2] .. "|" .. ARGV[3]
local dkey = deadlines_key()
local session_status = redis.call("HGET", KEYS[1], "status")
local raw = redis.call("HGET", KEYS[2], ARGV[3])
local rec = raw and cjson.decode(raw)
if not rec or (session_status ~= "executing" and session_status ~= "waiting_for_input")
  or (rec["status"] ~= "queued" and rec["status"] ~= "running") or rec["waitingFor"] then
  redis.call("ZREM", dkey, member)
  return {"gone"}
end
local deadline = tonumber(redis.call("ZSCORE", dkey, member) or "0")
if deadline > now then
  return {"early"}
end
if rec["status"] == "running" and tonumber(rec["leaseUntil"] or "0") > now then
  redis.call("ZADD", dkey, rec["leaseUntil"], member)
  return {"early"}
end
if rec["status"] == "running" then  -- its run died or hung: the lease ran out
  count_agent(rec["agentId"], rec, "timed_out", now)
  if (tonumber(rec["attempts"]) or 0) >= tonumber(ARGV[6]) then
    return {"dead", rec["attempts"]}  -- the caller fails it: dead-lettered
  end
end
local handed = release(rec["agentId"], member, now, tonumber(ARGV[5]))
rec["status"] = "queued"
rec["token"], rec["leaseUntil"], rec["agentId"] = nil, nil, nil
rec["recoveries"] = (tonumber(rec["recoveries"]) or 0) + 1
rec["queuedAt"] = now
local encoded = cjson.encode(rec)
redis.call("HSET", KEYS[2], ARGV[3], encoded)
redis.call("ZADD", dkey, now + tonumber(ARGV[5]), member)
return {"reroute", encoded, handed}
