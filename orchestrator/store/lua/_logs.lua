-- The log entries of a call, written by the script only on the path that did what they say: a
-- refused call (a late completion, a claim of a leased step, a stale failure) logs nothing. The
-- caller (orchestrator/store/runner.py) sends them as the last ARGV of every script that logs,
-- a JSON object {"sessionMax": the cap of a session's stream, "globalMax": the global one's,
-- "entries": [[session id or "", [field, value, ...]], ...]}; Logbook.payload builds it.

local function log_argc()
  -- how many ARGV come before the log entries (a script that loops to #ARGV stops there)
  return #ARGV - 1
end

local function write_logs()
  local payload = cjson.decode(ARGV[#ARGV])
  for _, entry in ipairs(payload["entries"]) do
    local sid, fields = entry[1], entry[2]
    if sid ~= "" then
      redis.call("XADD", session_logs_key(sid), "MAXLEN", "~", payload["sessionMax"], "*",
        unpack(fields))
    end
    redis.call("XADD", global_logs_key(), "MAXLEN", "~", payload["globalMax"], "*", unpack(fields))
  end
end
