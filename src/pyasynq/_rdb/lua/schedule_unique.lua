-- schedule_unique: take the uniqueness lock, then schedule (wire spec 3.3).
-- KEYS[1] unique lock key
-- KEYS[2] task hash
-- KEYS[3] scheduled zset
-- KEYS[4] asynq:queues, optional: registered first, as in enqueue.lua
-- ARGV[1] task id
-- ARGV[2] lock TTL, whole seconds (process-at + unique TTL - now)
-- ARGV[3] process-at, Unix seconds
-- ARGV[4] encoded TaskMessage
-- ARGV[5] queue name, optional (needed with KEYS[4])
-- Returns 1 scheduled, -1 lock held by another task, 0 task id taken (lock left behind).
if KEYS[4] then
    local added = redis.pcall("SADD", KEYS[4], ARGV[5])
    if type(added) == "table" and added.err then
        -- Keep Redis' own error code first (READONLY after a failover, OOM, ...):
        -- clients act on it, e.g. redis-py reconnects a Sentinel client on READONLY.
        return redis.error_reply(added.err .. " (registering the queue in asynq:queues; "
            .. "nothing stored)")
    end
end
local ok = redis.call("SET", KEYS[1], ARGV[1], "NX", "EX", ARGV[2])
if not ok then
    return -1
end
if redis.call("EXISTS", KEYS[2]) == 1 then
    return 0
end
-- The zset before the hash; a zset of the wrong type gives the lock just taken back, so
-- a failure leaves nothing behind.
local added = redis.pcall("ZADD", KEYS[3], ARGV[3], ARGV[1])
if type(added) == "table" and added.err then
    redis.call("DEL", KEYS[1])
    return redis.error_reply(added.err)
end
redis.call("HSET", KEYS[2], "msg", ARGV[4], "state", "scheduled", "unique_key", KEYS[1])
return 1
