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
-- "ua|<user>|<agent>|": cpu_us, wall_ms, runs (GET /costs).
local cpu, wall = tonumber(ARGV[3]), tonumber(ARGV[4])
local rss = tonumber(ARGV[5])
local function add(hash, prefix, with_rss)
  redis.call("HINCRBY", hash, prefix .. "cpu_us", cpu)
  redis.call("HINCRBY", hash, prefix .. "wall_ms", wall)
  redis.call("HINCRBY", hash, prefix .. "runs", 1)
  if with_rss and rss then
    local field = prefix .. "rss_kb"
    if rss > tonumber(redis.call("HGET", hash, field) or "-1") then
      redis.call("HSET", hash, field, ARGV[5])
    end
  end
end
add(KEYS[1], "t|", true)
add(KEYS[1], "s|" .. ARGV[1] .. "|", true)
add(KEYS[1], "a|" .. ARGV[2] .. "|", true)
redis.call("HINCRBY", KEYS[2], "a|" .. ARGV[2] .. "|cpu_us", cpu)
local user = redis.call("HGET", KEYS[4], "userId")
if not user or user == "" then
  user = "-"
end
add(KEYS[3], "u|" .. user .. "|", false)
add(KEYS[3], "a|" .. ARGV[2] .. "|", false)
add(KEYS[3], "ua|" .. user .. "|" .. ARGV[2] .. "|", false)
redis.call("EXPIREAT", KEYS[3], tonumber(ARGV[6]))
return 1
