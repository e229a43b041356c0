-- fold_metrics: add the metric facts the lifecycle scripts appended to the counters they stand
-- for (_slots.lua fold_metrics), before a read of the step metrics, an agent's metrics or the
-- run costs. Returns how many facts it folded.
-- (prepended: prelude)
--
-- KEYS[1] none: every key comes from the prelude (metrics_pending_key() and those its facts name)
-- ARGV[1] key prefix
return fold_metrics()
