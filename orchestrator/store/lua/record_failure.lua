-- record_failure: count a step failure against an agent; open its circuit when it failed
-- `threshold` times within the window. Opening clears the count, so after the cooldown the
-- agent gets a fresh start (half-open: the next failures count again).
--
-- KEYS[1] agent hash   KEYS[2] agent failures (sorted set of times)
-- ARGV[1] now (ms)   ARGV[2] window (ms)   ARGV[3] threshold   ARGV[4] cooldown (ms)
-- ARGV[5] unique member for this failure
--
-- Returns {failures in window, circuit open until (ms) or 0 if this call did not open it}
local now = tonumber(ARGV[1])
redis.call("ZADD", KEYS[2], now, ARGV[5])
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", "(" .. (now - tonumber(ARGV[2])))
redis.call("PEXPIRE", KEYS[2], tonumber(ARGV[2]))
local count = redis.call("ZCARD", KEYS[2])
if count >= tonumber(ARGV[3]) and redis.call("EXISTS", KEYS[1]) == 1 then
  local open_until = now + tonumber(ARGV[4])
  redis.call("HSET", KEYS[1], "circuitOpenUntil", open_until)
  redis.call("DEL", KEYS[2])
  return {count, open_until}
end
return {count, 0}
