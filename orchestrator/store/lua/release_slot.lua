-- release_slot: free an agent's slot held for a step that will not run (its delivery found the
-- step finished or the session over), and hand the slot to waiting steps.
-- (prepended: prelude)
--
-- KEYS[1] agent hash   KEYS[2] agent slots   KEYS[3] deadlines
-- ARGV[1] key prefix   ARGV[2] agent id   ARGV[3] slot member   ARGV[4] now (ms)
-- ARGV[5] reservation (ms)
-- Also (prelude): the waiting lists of the agent's capabilities, and the steps and session hashes
-- of the waiting steps the slot is handed to.
--
-- Returns {session id, step id, queue, agent id, ...} of waiting steps now reserved on the agent.
redis.call("ZREM", KEYS[2], ARGV[3])
return handoff(ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]))
