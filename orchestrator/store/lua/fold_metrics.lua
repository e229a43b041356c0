-- fold_metrics: add the metric facts the lifecycle scripts appended to the counters they stand
-- for (_slots.lua fold_metrics), before a read of step_counts, step_durations or an agent's
-- metrics. Returns how many facts it folded.
-- (prepended: prelude)
--
-- ARGV[1] key prefix
return fold_metrics()
