-- commit_transaction: apply a transaction's buffered writes to a session's shared state, but only
-- if every key the transaction read still holds exactly what it saw; otherwise change nothing.
-- Values are compared and written as the raw JSON strings they are, never decoded: cjson would
-- lose number precision and reorder objects.
--
-- Every expected value and every change is tagged by its first character, so no JSON value can be
-- mistaken for a marker: "=" followed by the raw JSON, or "!" alone for "absent" / "delete".
--
-- KEYS[1] shared state hash
-- ARGV[1] number of reads n
-- ARGV[2] .. ARGV[2n+1] reads as key, expected pairs: "=" .. raw JSON the key held, or "!" if absent
-- ARGV[2n+2] .. writes as key, change pairs: "=" .. raw JSON to store, or "!" to delete the key
--
-- Returns one of:
--   {"ok", number of writes applied}
--   {"conflict", {key, ...}}   the read keys whose value changed since they were read: nothing changed
local reads = tonumber(ARGV[1])
local conflicts = {}
for i = 2, 2 * reads, 2 do
  local current = redis.call("HGET", KEYS[1], ARGV[i])
  local seen = "!"
  if current then
    seen = "=" .. current
  end
  if seen ~= ARGV[i + 1] then
    conflicts[#conflicts + 1] = ARGV[i]
  end
end
if #conflicts > 0 then
  return {"conflict", conflicts}
end
local written = 0
for i = 2 * reads + 2, #ARGV, 2 do
  local change = ARGV[i + 1]
  if string.sub(change, 1, 1) == "=" then
    redis.call("HSET", KEYS[1], ARGV[i], string.sub(change, 2))
  else
    redis.call("HDEL", KEYS[1], ARGV[i])
  end
  written = written + 1
end
return {"ok", written}
