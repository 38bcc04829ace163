-- inspect_groups: the groups of a queue with their sizes (wire spec 3.20, Groups).
-- KEYS[1] groups set
-- ARGV[1] group key prefix asynq:{q}:g:
-- Returns a flat array {name, size, name, size, ...} in SMEMBERS order.
local out = {}
for _, gname in ipairs(redis.call("SMEMBERS", KEYS[1])) do
    out[#out + 1] = gname
    out[#out + 1] = redis.call("ZCARD", ARGV[1] .. gname)
end
return out
