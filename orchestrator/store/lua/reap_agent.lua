-- reap_agent: drop an agent's expired slots (runs whose worker died) and hand the free slots to
-- waiting steps. Workers call it for their agents on every heartbeat, and when an agent
-- registers, so waiting steps also start when capacity appears without any release.
-- (prepended: prelude)
--
-- KEYS[1] agent hash   KEYS[2] agent slots   KEYS[3] deadlines
-- ARGV[1] key prefix   ARGV[2] agent id   ARGV[3] now (ms)   ARGV[4] reservation (ms)
-- Also (prelude): the waiting lists of the agent's capabilities, and the steps and session hashes
-- of the waiting steps the free slots are handed to.
--
-- Returns {session id, step id, queue, agent id, ...} of waiting steps now reserved on the agent.
local now = tonumber(ARGV[3])
live_load(KEYS[2], now)
return handoff(ARGV[2], now, tonumber(ARGV[4]))
