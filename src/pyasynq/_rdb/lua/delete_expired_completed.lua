-- delete_expired_completed: drop completed tasks whose retention ran out (wire spec 3.14).
-- KEYS[1] completed zset (score = completion time + retention)
-- ARGV[1] now, Unix seconds
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3] batch size, the most tasks to delete in this call
-- Returns how many tasks were deleted; the janitor repeats until 0.
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
    redis.call("DEL", ARGV[2] .. id)
    redis.call("ZREM", KEYS[1], id)
end
return #ids
