-- add_run: count one step run's CPU time, wall time and peak resident set, when the run ends.
-- Sums are exact integers (microseconds, milliseconds); the peak is kept as a maximum. Not atomic
-- with the run's outcome: a run whose process dies before this is not counted (its model calls
-- are, as record_call.lua counted them when they were recorded).
--
-- KEYS[1] session costs hash   KEYS[2] cost totals hash   KEYS[3] this hour's costs hash
-- KEYS[4] session hash (its userId)
-- ARGV[1] step id   ARGV[2] agent id   ARGV[3] CPU (us)   ARGV[4] wall (ms)
-- ARGV[5] the worker process's peak resident set while the run ran (KiB; "": unknown)
-- ARGV[6] when the hour's hash expires (unix seconds)
--
-- Session counters under "t|", "s|<step>|", "a|<agent>|": cpu_us, wall_ms, runs, rss_kb (max);
-- totals "a|<agent>|cpu_us" (/metrics); the hour's "u|<user>|", "a|<agent>|" and
-- "ua|<user>|<agent>|": cpu_us, runs (GET /costs; no wall time there).
local cpu, wall = tonumber(ARGV[3]), tonumber(ARGV[4])
local rss = tonumber(ARGV[5])
local step, agent = "s|" .. ARGV[1] .. "|", "a|" .. ARGV[2] .. "|"
for _, prefix in ipairs({"t|", step, agent}) do
  redis.call("HINCRBY", KEYS[1], prefix .. "cpu_us", cpu)
  redis.call("HINCRBY", KEYS[1], prefix .. "wall_ms", wall)
  redis.call("HINCRBY", KEYS[1], prefix .. "runs", 1)
end
if rss then  -- the peaks, kept as maxima: one read for the three
  local fields = {"t|rss_kb", step .. "rss_kb", agent .. "rss_kb"}
  local peaks = redis.call("HMGET", KEYS[1], unpack(fields))
  for i, field in ipairs(fields) do
    if rss > tonumber(peaks[i] or "-1") then
      redis.call("HSET", KEYS[1], field, ARGV[5])
    end
  end
end
redis.call("HINCRBY", KEYS[2], agent .. "cpu_us", cpu)
local user = redis.call("HGET", KEYS[4], "userId")
if not user or user == "" then
  user = "-"
end
for _, prefix in ipairs({"u|" .. user .. "|", agent, "ua|" .. user .. "|" .. ARGV[2] .. "|"}) do
  redis.call("HINCRBY", KEYS[3], prefix .. "cpu_us", cpu)
  redis.call("HINCRBY", KEYS[3], prefix .. "runs", 1)
end
redis.call("EXPIREAT", KEYS[3], tonumber(ARGV[6]))
return 1
