-- release_idempotency: give an Idempotency-Key up when the submit it was claimed for failed, only
-- while it still names that submit's session (compare and delete in one step). A script, not
-- WATCH/MULTI: Redis out of memory refuses every command queued in a MULTI, DEL included, but
-- runs a script whose only write is a DEL, so the key is given up even then.
--
-- KEYS[1] the idempotency key
-- ARGV[1] "|<session id>": how the key's value ("<body digest>|<session id>") ends while held
--
-- Returns 1 when the key was deleted, 0 when it names another session or is gone.
local held = redis.call("GET", KEYS[1])
if held and string.sub(held, -string.len(ARGV[1])) == ARGV[1] then
  redis.call("DEL", KEYS[1])
  return 1
end
return 0
