-- release_slot: free an agent's slot held for a step that will not run (its delivery found the
-- step finished or the session over), and hand the slot to waiting steps.
-- (prepended: _slots.lua)
--
-- ARGV[1] key prefix   ARGV[2] agent id   ARGV[3] slot member   ARGV[4] now (ms)
-- ARGV[5] reservation (ms)
--
-- Returns {session id, step id, queue, agent id, ...} of waiting steps now reserved on the agent.
return release(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
