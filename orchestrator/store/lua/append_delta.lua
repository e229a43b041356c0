-- append_delta: add one chunk of a running step's model text to the session's capped delta
-- stream (orchestrator/store/deltas.py), only while the session runs: retention expires the
-- stream with the rest of the session when it ends, so nothing may create it afterwards.
--
-- KEYS[1] session hash   KEYS[2] delta stream
-- ARGV[1] approximate MAXLEN of the stream   ARGV[2..] field, value, field, value, ...
--
-- Returns {"ok", entry id} | {"ended", session status | "missing"} (nothing written)
local status = redis.call("HGET", KEYS[1], "status")
if status ~= "executing" and status ~= "waiting_for_input" then
  return {"ended", status or "missing"}
end
local command = {"XADD", KEYS[2], "MAXLEN", "~", ARGV[1], "*"}
for i = 2, #ARGV do
  command[#command + 1] = ARGV[i]
end
return {"ok", redis.call(unpack(command))}
