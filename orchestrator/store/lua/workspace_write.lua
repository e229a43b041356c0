-- workspace_write: create or replace one file of a session's workspace, only while the session
-- runs (so nothing is written after retention expired its keys) and only within the number of
-- files a workspace may hold (a replaced file does not count twice). Size and path rules are
-- checked before the call (orchestrator/core/workspace.py).
--
-- KEYS[1] session hash   KEYS[2] workspace hash
-- ARGV[1] path   ARGV[2] content (UTF-8 text)   ARGV[3] most files the workspace may hold
--
-- Returns {"ok", created (1|0)}
--   | {"full", number of files}              a new file over the limit: nothing written
--   | {"ended", session status | "missing"}  the session is over: nothing written
local status = redis.call("HGET", KEYS[1], "status")
if status ~= "executing" and status ~= "waiting_for_input" then
  return {"ended", status or "missing"}
end
if redis.call("HEXISTS", KEYS[2], ARGV[1]) == 0 then
  local count = redis.call("HLEN", KEYS[2])
  if count >= tonumber(ARGV[3]) then return {"full", count} end
  redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
  return {"ok", 1}
end
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
return {"ok", 0}
