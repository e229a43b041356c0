-- renew_lease: extend the lease of a running step (and its agent slot), only for the run that
-- owns it.
--
-- KEYS[1] steps hash   KEYS[2] agent slots   KEYS[3] deadlines
-- ARGV[1] step id   ARGV[2] run token   ARGV[3] new leaseUntil (ms)   ARGV[4] slot member
--
-- Returns 1 when renewed, 0 when this run no longer owns the step (it must stop reporting).
local raw = redis.call("HGET", KEYS[1], ARGV[1])
if not raw then
  return 0
end
local rec = cjson.decode(raw)
if rec["status"] ~= "running" or rec["token"] ~= ARGV[2] then
  return 0
end
rec["leaseUntil"] = tonumber(ARGV[3])
redis.call("HSET", KEYS[1], ARGV[1], cjson.encode(rec))
redis.call("ZADD", KEYS[2], tonumber(ARGV[3]), ARGV[4])
redis.call("ZADD", KEYS[3], tonumber(ARGV[3]), ARGV[4])
return 1
