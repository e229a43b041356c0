-- Shared functions of the lifecycle scripts, prepended to them after the key-name functions that
-- orchestrator/store/prelude.py renders from Keys (PREFIX = ARGV[1], session_key(session_id),
-- agent_slots_key(agent_id), waiting_key(capability), ...). No key is spelled here.
--
-- An agent's load is its slots sorted set, agent_slots_key(id), whose members are
-- "<session id>|<step id>" and whose scores are lease expiry times (ms). Live load is the number
-- of members whose lease has not expired, so a dead worker's slots free themselves.
-- Steps that found every eligible agent full wait in waiting_key(capability) (JSON entries
-- {s, t, caps, type, ex, only}: session, step, capabilities, agent type, agents excluded, the
-- one agent it is pinned to); a released slot is handed to the first entry the agent can run.
-- Their record says why: waitingFor WAITING_FOR_CAPACITY (eligible agents, all full) or
-- WAITING_FOR_AGENT (no eligible agent alive: the step also has a schedule deadline in
-- schedule_deadlines_key(), after which the reconciler fails it unless an agent appeared).
-- Every queued-and-routed or running step has a deadline in deadlines_key(): the time by which it
-- must be claimed or renew its lease. The reconciler (recover_step.lua) reroutes steps whose
-- deadline passed.

local function live_load(slots, now)
  redis.call("ZREMRANGEBYSCORE", slots, "-inf", "(" .. now)
  return redis.call("ZCARD", slots)
end

-- Whether an agent may take new work now, from its status, aliveUntil and circuitOpenUntil
-- fields: active, alive, circuit closed.
local function fields_take_work(status, alive_until, open_until, now)
  return status == "active" and tonumber(alive_until or "0") >= now
    and tonumber(open_until or "0") <= now
end

local function takes_work(akey, now)
  local f = redis.call("HMGET", akey, "status", "aliveUntil", "circuitOpenUntil")
  return fields_take_work(f[1], f[2], f[3], now)
end

-- An agent's queue: its "queue" field, else its default queue.
local function queue_or_default(queue, agent_id)
  if queue then return queue end
  return default_agent_queue(agent_id)
end

local function agent_queue(akey, agent_id)
  return queue_or_default(redis.call("HGET", akey, "queue"), agent_id)
end

local function has_all(have, need)
  for _, cap in ipairs(need) do
    if not have[cap] then return false end
  end
  return true
end

local function excluded(list, agent_id)
  for _, id in ipairs(list or {}) do
    if id == agent_id then return true end
  end
  return false
end

-- Hand free slots of one agent to waiting steps it can run. Returns a flat list
-- {session id, step id, queue, agent id, ...} of steps now reserved on it.
local function handoff(agent_id, now, reserve_ms)
  local akey, skey = agent_key(agent_id), agent_slots_key(agent_id)
  local out = {}
  -- one read of the agent: takes work (active, alive, circuit closed), then what it can run
  local f = redis.call("HMGET", akey, "status", "aliveUntil", "circuitOpenUntil", "maxLoad",
    "capabilities", "type", "queue")
  if not fields_take_work(f[1], f[2], f[3], now) then return out end
  local max_load, agent_type = tonumber(f[4] or "0"), f[6]
  local caps_list = cjson.decode(f[5] or "[]")
  local have = {}
  for _, cap in ipairs(caps_list) do have[cap] = true end
  local queue = queue_or_default(f[7], agent_id)
  -- the live load, read once: nothing else changes the slots while this script runs
  local load = live_load(skey, now)
  for _, cap in ipairs(caps_list) do
    if load >= max_load then return out end
    local wkey = waiting_key(cap)
    local entries = redis.call("LRANGE", wkey, 0, 99)
    for _, raw in ipairs(entries) do
      if load >= max_load then return out end
      local entry = cjson.decode(raw)
      local fits = has_all(have, entry["caps"]) and not excluded(entry["ex"], agent_id)
        and (entry["type"] == nil or entry["type"] == agent_type)
        and (entry["only"] == nil or entry["only"] == agent_id)
      if fits then
        redis.call("LREM", wkey, 1, raw)
        local rec_raw = redis.call("HGET", steps_key(entry["s"]), entry["t"])
        local status = redis.call("HGET", session_key(entry["s"]), "status")
        if rec_raw and (status == "executing" or status == "waiting_for_input") then
          local rec = cjson.decode(rec_raw)
          if rec["status"] == "queued"
            and (rec["waitingFor"] == WAITING_FOR_CAPACITY
              or rec["waitingFor"] == WAITING_FOR_AGENT) then
            local member = entry["s"] .. "|" .. entry["t"]
            rec["waitingFor"], rec["scheduleDeadline"] = nil, nil
            rec["agentId"] = agent_id
            rec["queue"] = queue
            rec["queuedAt"] = now
            redis.call("HSET", steps_key(entry["s"]), entry["t"], cjson.encode(rec))
            redis.call("ZADD", skey, now + reserve_ms, member)
            load = load + 1
            redis.call("ZADD", deadlines_key(), now + reserve_ms, member)
            redis.call("ZREM", schedule_deadlines_key(), member)
            table.insert(out, entry["s"])
            table.insert(out, entry["t"])
            table.insert(out, queue)
            table.insert(out, agent_id)
          end
        end
      end
    end
  end
  return out
end

-- Release one slot of an agent and hand what it freed to waiting steps.
local function release(agent_id, member, now, reserve_ms)
  if agent_id == nil or agent_id == "" then return {} end
  redis.call("ZREM", agent_slots_key(agent_id), member)
  return handoff(agent_id, now, reserve_ms)
end

-- Session status changes go through here: the per-status index stays right, and a session that
-- ends gets its retention expiry on every key it owns (Keys.session_owned documents which).
local TERMINAL = {completed = true, failed = true, cancelled = true}

local function expire_session(sid, ms)
  for _, key in ipairs(session_owned_keys(sid)) do
    redis.call("PEXPIRE", key, ms)
  end
  for _, agent in ipairs(redis.call("SMEMBERS", private_state_index_key(sid))) do
    redis.call("PEXPIRE", private_state_key(sid, agent), ms)
  end
  -- temporary entries expire by themselves: only those that would outlive the session shorten
  for _, name in ipairs(redis.call("ZRANGE", temporary_state_index_key(sid), 0, -1)) do
    local key = temporary_state_key(sid, name)
    local ttl = redis.call("PTTL", key)
    if ttl == -1 or ttl > ms then redis.call("PEXPIRE", key, ms) end
  end
end

-- Returns true when this call ended the session (moved it to a terminal status).
local function set_session_status(sid, skey, new_status, now)
  local old = redis.call("HGET", skey, "status")
  if old == new_status then return false end
  redis.call("HSET", skey, "status", new_status)
  local created = redis.call("HGET", skey, "createdAt") or now
  if old then redis.call("ZREM", sessions_by_status_key(old), sid) end
  redis.call("ZADD", sessions_by_status_key(new_status), created, sid)
  if TERMINAL[new_status] then
    redis.call("HSET", skey, "endTime", now)
    local ms = tonumber(redis.call("HGET", skey, "retentionMs") or "0")
    if ms > 0 then expire_session(sid, ms) end
    local ended = not TERMINAL[old or ""]
    -- a webhook: recorded with the ending, in the same script, so it is never lost or doubled
    if ended and redis.call("HEXISTS", skey, "callbackUrl") == 1 then
      redis.call("ZADD", webhook_outbox_key(), now, sid .. "|" .. now)
    end
    return ended
  end
  return false
end

local function sid_of(member) return string.sub(member, 1, string.find(member, "|", 1, true) - 1) end

-- Step metrics for /metrics, kept in Redis so every API process reports the same numbers:
--   step_counts_key()     hash "<capability>|<outcome>" -> count
--   step_durations_key()  hash "<capability>|le=<bound>" -> count (not cumulative),
--                         and "<capability>|sum_ms" (the count is the buckets' sum)
-- Agent metrics across sessions (Keys.agent_metrics, read by orchestrator/store/agent_metrics.py):
-- each outcome of a step run on an agent, also per capability: all-time, and in five-minute and
-- hourly buckets that expire after the windows that read them (1h, 24h). Outcomes: started,
-- succeeded, failed (and failed|<error type>), retried, fallback, timed_out; run_ms and wait_ms
-- go to histograms with DURATION_BOUNDS_S.
--
-- The script that records an outcome does not write these counters itself: it appends one fact
-- to metrics_pending_key() (one RPUSH, in the same atomic call as the record, so a duplicate or
-- stale record counts nothing), and fold_metrics() adds the pending facts to the hashes with one
-- HINCRBY per distinct field: 31 counter writes per step become 2 appends and a share of a fold.
-- A fold runs inside the script whose append makes FOLD_AT facts, and before every read
-- (orchestrator/store/metrics_fold.py), so a reader always sees every outcome recorded before it.
local DURATION_BOUNDS_S = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
local AGENT_BUCKETS = {{"m5", 300000, 3900}, {"h1", 3600000, 90000}}  -- width ms, TTL s
local FOLD_AT = 200

local function duration_bound(ms)
  for _, b in ipairs(DURATION_BOUNDS_S) do
    if ms <= b * 1000 then return tostring(b) end
  end
  return "+Inf"
end

-- Facts (JSON arrays): {"s", capability, outcome, duration ms or false} for the step metrics;
-- {"a", agent id, outcome, now ms, {capability, ...}, error type or false, run ms or false,
-- wait ms or false} for an agent's; {"r", session id, step id, agent id, user ("-": none),
-- cpu us, wall ms, peak RSS KiB or false, hour, when the hour's hash expires (unix s)} for a
-- step run's resources (add_run.lua; the counters are described there). Returns how many facts
-- it folded.
local function fold_metrics()
  local pending = metrics_pending_key()
  local facts = redis.call("LRANGE", pending, 0, -1)
  if #facts == 0 then return 0 end
  local sums, order, ttls = {}, {}, {}
  local peaks, expire_at, sessions = {}, {}, {}
  local function add(hash, field, n)
    local fields = sums[hash]
    if not fields then
      fields = {}
      sums[hash] = fields
      table.insert(order, hash)
    end
    fields[field] = (fields[field] or 0) + n
  end
  local function run_fact(f)
    local sid, agent, user = f[2], "a|" .. f[4] .. "|", f[5]
    local cpu, wall, rss = f[6], f[7], f[8]
    -- the session's counters, unless the session is gone (retention removed it)
    if sessions[sid] == nil then
      sessions[sid] = redis.call("EXISTS", session_key(sid)) == 1
    end
    if sessions[sid] then
      local costs = costs_key(sid)
      for _, prefix in ipairs({"t|", "s|" .. f[3] .. "|", agent}) do
        add(costs, prefix .. "cpu_us", cpu)
        add(costs, prefix .. "wall_ms", wall)
        add(costs, prefix .. "runs", 1)
        if rss then
          peaks[costs] = peaks[costs] or {}
          local field = prefix .. "rss_kb"
          if rss > (peaks[costs][field] or -1) then peaks[costs][field] = rss end
        end
      end
    end
    add(cost_totals_key(), agent .. "cpu_us", cpu)
    local hour = cost_hour_key(f[9])
    for _, prefix in ipairs({"u|" .. user .. "|", agent, "ua|" .. user .. "|" .. f[4] .. "|"}) do
      add(hour, prefix .. "cpu_us", cpu)
      add(hour, prefix .. "runs", 1)
    end
    expire_at[hour] = math.max(expire_at[hour] or 0, f[10])
  end
  local function histogram(hash, name, ms)
    add(hash, name .. "|le=" .. duration_bound(ms), 1)
    add(hash, name .. "|sum_ms", math.floor(ms))
  end
  -- everything is added up before the first write: an error here leaves the facts pending
  for _, raw in ipairs(facts) do
    local decoded, f = pcall(cjson.decode, raw)
    if not decoded or type(f) ~= "table" then
      redis.log(redis.LOG_WARNING, "meowstik fold_metrics: dropped a fact that is not JSON")
      f = {}
    end
    if f[1] == "r" then
      run_fact(f)
    elseif f[1] == "s" then
      add(step_counts_key(), f[2] .. "|" .. f[3], 1)
      if f[4] then histogram(step_durations_key(), f[2], f[4]) end
    elseif f[1] == "a" then
      local agent_id, outcome = f[2], f[3]
      local hashes = {agent_metrics_key(agent_id)}
      for _, b in ipairs(AGENT_BUCKETS) do
        local key = agent_metrics_window_key(agent_id, b[1] .. "-" .. math.floor(f[4] / b[2]))
        table.insert(hashes, key)
        ttls[key] = b[3]
      end
      for _, hash in ipairs(hashes) do
        add(hash, outcome, 1)
        if f[6] then add(hash, outcome .. "|" .. f[6], 1) end
        for _, cap in ipairs(f[5]) do add(hash, "c|" .. cap .. "|" .. outcome, 1) end
        if f[7] then histogram(hash, "run", f[7]) end
        if f[8] then histogram(hash, "wait", f[8]) end
      end
    end
  end
  redis.call("DEL", pending)
  local session_ms = {}
  for sid, exists in pairs(sessions) do
    -- a session's costs hash made by this fold expires with the session (retention set the
    -- session's keys' TTL when it ended, before the hash existed)
    if exists and redis.call("EXISTS", costs_key(sid)) == 0 then
      local ms = redis.call("PTTL", session_key(sid))
      if ms > 0 then session_ms[costs_key(sid)] = ms end
    end
  end
  for _, hash in ipairs(order) do
    for field, n in pairs(sums[hash]) do
      redis.call("HINCRBY", hash, field, n)
    end
    if ttls[hash] then redis.call("EXPIRE", hash, ttls[hash]) end
    if session_ms[hash] then redis.call("PEXPIRE", hash, session_ms[hash]) end
    if expire_at[hash] then redis.call("EXPIREAT", hash, expire_at[hash]) end
  end
  for hash, fields in pairs(peaks) do  -- the peaks, kept as maxima: one read per hash
    local names, values = {}, {}
    for field, value in pairs(fields) do
      table.insert(names, field)
      table.insert(values, value)
    end
    local current = redis.call("HMGET", hash, unpack(names))
    for i, field in ipairs(names) do
      if values[i] > tonumber(current[i] or "-1") then
        redis.call("HSET", hash, field, values[i])
      end
    end
  end
  return #facts
end

local function note_fact(fact)
  if redis.call("RPUSH", metrics_pending_key(), cjson.encode(fact)) >= FOLD_AT then
    -- the calling script has written its record already: a fold that fails must not stop it
    -- half-way (a script's writes are not rolled back); the facts wait for the next fold
    local ok, err = pcall(fold_metrics)
    if not ok then redis.log(redis.LOG_WARNING, "meowstik fold_metrics: " .. tostring(err)) end
  end
end

local function count_step(capability, outcome, duration_ms)
  note_fact({"s", capability, outcome, duration_ms and math.max(duration_ms, 0) or false})
end

local function count_agent(agent_id, rec, outcome, now, opts)
  if not agent_id or agent_id == "" or agent_id == cjson.null then return end
  opts = opts or {}
  local caps = {}
  if type(rec["caps"]) == "table" then
    for _, cap in ipairs(rec["caps"]) do table.insert(caps, cap) end
  end
  note_fact({"a", agent_id, outcome, now, caps, opts.error_type or false,
    opts.run_ms or false, opts.wait_ms or false})
end

local function first_capability(rec)
  local caps = rec["caps"]
  if type(caps) == "table" and caps[1] then return caps[1] end
  return "unknown"
end

-- Routing inside a script (complete_step uses it for the dependents it releases, so a released
-- step is routed in the same round trip that released it). Eligibility and order are those of
-- orchestrator/selection.py, which tests/unit/test_inline_routing.py keeps equal:
-- eligible = active, alive, circuit closed, the step's agentType, not an agent it failed on;
-- least_loaded = (load, -priority, capabilities, id); priority_first = (-priority, load,
-- capabilities, id); round_robin = agents with room by id, rotated, then the full ones.
-- A step record's agentType (nil when absent or JSON null) and failedAgents (a list).
local function record_agent_type(rec)
  local agent_type = rec["agentType"]
  if agent_type == cjson.null then return nil end
  return agent_type
end

local function record_failed_agents(rec)
  local failed = rec["failedAgents"]
  if type(failed) ~= "table" then return {} end
  return failed
end

local function ranked_candidates(rec, now, policy, rotation)
  local ckeys = {}
  for i, cap in ipairs(rec["caps"] or {}) do ckeys[i] = capability_agents_key(cap) end
  if #ckeys == 0 then return nil end
  local agent_type, failed = record_agent_type(rec), record_failed_agents(rec)
  local out = {}
  for _, id in ipairs(redis.call("SINTER", unpack(ckeys))) do
    if not excluded(failed, id) then
      local f = redis.call("HMGET", agent_key(id), "status", "aliveUntil",
        "circuitOpenUntil", "maxLoad", "priority", "capabilities", "type", "queue")
      if fields_take_work(f[1], f[2], f[3], now) and (agent_type == nil or f[7] == agent_type) then
        table.insert(out, {
          id = id,
          load = redis.call("ZCOUNT", agent_slots_key(id), now, "+inf"),
          max = tonumber(f[4] or "0"),
          prio = tonumber(f[5] or "0"),
          ncaps = #cjson.decode(f[6] or "[]"),
          queue = queue_or_default(f[8], id),
        })
      end
    end
  end
  local function by(keys)
    return function(a, b)
      for _, k in ipairs(keys) do
        local x, y = a[k], b[k]
        if k == "prio" then x, y = -x, -y end
        if x ~= y then return x < y end
      end
      return false
    end
  end
  if policy == "round_robin" then
    local free, full = {}, {}
    for _, c in ipairs(out) do
      if c.load < c.max then table.insert(free, c) else table.insert(full, c) end
    end
    table.sort(free, by({"id"}))
    table.sort(full, by({"id"}))
    out = {}
    local shift = #free > 0 and (rotation % #free) or 0
    for i = 1, #free do out[i] = free[((i - 1 + shift) % #free) + 1] end
    for _, c in ipairs(full) do table.insert(out, c) end
  elseif policy == "priority_first" then
    table.sort(out, by({"prio", "load", "ncaps", "id"}))
  else
    table.sort(out, by({"load", "prio", "ncaps", "id"}))
  end
  return out
end

-- Park a queued step (record `rec`, written here) in the waiting list wkey with its entry:
-- waitingFor WAITING_FOR_CAPACITY when eligible agents exist but are full, WAITING_FOR_AGENT
-- when none is alive (`no_candidates`); then the step also gets a schedule deadline, the session's
-- scheduleTimeoutMs from now (none when 0 or absent), after which the reconciler fails it.
local function park(sid, steps_hash, step_id, rec, wkey, entry, now, no_candidates)
  local member = sid .. "|" .. step_id
  redis.call("ZREM", deadlines_key(), member)
  rec["agentId"], rec["scheduleDeadline"] = nil, nil
  rec["waitingFor"] = WAITING_FOR_CAPACITY
  if no_candidates then
    rec["waitingFor"] = WAITING_FOR_AGENT
    local timeout = tonumber(redis.call("HGET", session_key(sid), "scheduleTimeoutMs") or "0") or 0
    if timeout > 0 then
      rec["scheduleDeadline"] = now + timeout
      redis.call("ZADD", schedule_deadlines_key(), now + timeout, member)
    end
  end
  redis.call("HSET", steps_hash, step_id, cjson.encode(rec))
  redis.call("RPUSH", wkey, cjson.encode(entry))
end

-- Forget steps that stopped waiting (failed, skipped, cancelled): their schedule deadlines and
-- their entries in the waiting lists. `gone` maps "<sid>|<step id>" to true; `caps` lists the
-- waiting lists' capabilities (first capability of each step). One pass over each list.
local function unpark_all(gone, caps)
  local seen = {}
  for member in pairs(gone) do redis.call("ZREM", schedule_deadlines_key(), member) end
  for _, cap in ipairs(caps) do
    if not seen[cap] then
      seen[cap] = true
      local wkey = waiting_key(cap)
      for _, raw in ipairs(redis.call("LRANGE", wkey, 0, -1)) do
        local entry = cjson.decode(raw)
        if gone[entry["s"] .. "|" .. entry["t"]] then redis.call("LREM", wkey, 1, raw) end
      end
    end
  end
end

-- Note in (gone, caps) a step record that is waiting for a slot, for unpark_all; clears its
-- waiting fields. Returns true if it was waiting.
local function note_unparked(gone, caps, member, rec)
  local waiting = rec["waitingFor"]
  if waiting ~= WAITING_FOR_CAPACITY and waiting ~= WAITING_FOR_AGENT then return false end
  gone[member] = true
  table.insert(caps, first_capability(rec))
  rec["waitingFor"], rec["scheduleDeadline"] = nil, nil
  return true
end

-- Route one queued step (record `rec`, already decoded) of session sid: reserve a slot on the best
-- candidate with room, or park the step in the waiting list of its first capability. Writes the
-- record. Returns agent id, queue (reserved) or nil, ranked candidate ids (parked); returns
-- false when it cannot decide here (no capabilities), leaving the step to the caller's router.
local function route_inline(sid, steps_hash, step_id, rec, now, reserve, policy, rotation)
  local ranked = ranked_candidates(rec, now, policy, rotation)
  if ranked == nil then return false end
  local member = sid .. "|" .. step_id
  for _, c in ipairs(ranked) do
    if c.load < c.max then
      redis.call("ZADD", agent_slots_key(c.id), now + reserve, member)
      redis.call("ZADD", deadlines_key(), now + reserve, member)
      rec["agentId"] = c.id
      rec["queue"] = c.queue
      rec["queuedAt"] = now
      redis.call("HSET", steps_hash, step_id, cjson.encode(rec))
      return c.id, c.queue
    end
  end
  local entry = {caps = rec["caps"], ex = record_failed_agents(rec), s = sid, t = step_id,
    type = record_agent_type(rec)}
  park(sid, steps_hash, step_id, rec, waiting_key(rec["caps"][1]), entry, now, #ranked == 0)
  local ids = {}
  for i, c in ipairs(ranked) do ids[i] = c.id end
  return nil, ids
end

-- State entries' versions (state_meta_key: see Keys.state_meta). ``field`` is
-- "<scope>|[<agent>|]<key>"; the record is "<version>|<updated at ms>|<updated by>". Every write
-- and delete bumps the version, so versions never repeat: a reader that saw one sees any change.
local function state_version(sid, field)
  local current = redis.call("HGET", state_meta_key(sid), field)
  if not current then return 0 end
  return tonumber(string.match(current, "^(%d+)"))
end

local function bump_state_version(sid, field, now, who)
  local version = state_version(sid, field) + 1
  redis.call("HSET", state_meta_key(sid), field, version .. "|" .. now .. "|" .. who)
  return version
end
