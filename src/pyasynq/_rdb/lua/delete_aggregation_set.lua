-- delete_aggregation_set: drop a set once its aggregated task is enqueued (wire spec 3.15).
-- KEYS[1] aggregation set zset asynq:{q}:g:<group>:<set id>
-- KEYS[2] aggregation_sets zset
-- ARGV[1] task key prefix asynq:{q}:t:
-- Returns how many member task hashes were deleted. The set is deleted and leaves
-- aggregation_sets. Uniqueness locks of the members are not released (as in Go).
-- Reads and the registry first: a key of the wrong type fails the script before anything
-- is deleted.
local ids = redis.call("ZRANGE", KEYS[1], 0, -1)
redis.call("ZREM", KEYS[2], KEYS[1])
local n = 0
for _, id in ipairs(ids) do
    n = n + redis.call("DEL", ARGV[1] .. id)
end
redis.call("DEL", KEYS[1])
return n
