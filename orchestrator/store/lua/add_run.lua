-- add_run: count one step run's CPU time, wall time and peak resident set, when the run ends.
-- Sums are exact integers (microseconds, milliseconds); the peak is kept as a maximum. Not atomic
-- with the run's outcome: a run whose process dies before this is not counted (its model calls
-- are, as record_call.lua counted them when they were recorded).
-- (prepended: prelude)
--
-- KEYS[1] session hash (its userId)
-- ARGV[1] key prefix   ARGV[2] session id   ARGV[3] step id   ARGV[4] agent id   ARGV[5] CPU (us)
-- ARGV[6] wall (ms)   ARGV[7] the worker process's peak resident set while the run ran (KiB;
-- "": unknown)   ARGV[8] the hour (since the epoch)   ARGV[9] when the hour's hash expires
-- (unix seconds)
--
-- Appends one fact (_slots.lua fold_metrics folds it, with the step and agent metrics) for:
-- session counters (costs_key) under "t|", "s|<step>|", "a|<agent>|": cpu_us, wall_ms, runs,
-- rss_kb (max); totals "a|<agent>|cpu_us" (/metrics); the hour's "u|<user>|", "a|<agent>|" and
-- "ua|<user>|<agent>|": cpu_us, runs (GET /costs; no wall time there).
local user = redis.call("HGET", KEYS[1], "userId")
if not user or user == "" then
  user = "-"
end
note_fact({"r", ARGV[2], ARGV[3], ARGV[4], user, tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7]) or false, tonumber(ARGV[8]), tonumber(ARGV[9])})
return 1
