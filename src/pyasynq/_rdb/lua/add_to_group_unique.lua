-- add_to_group_unique: take the uniqueness lock, then add to the group (wire spec 3.4).
-- KEYS[1] task hash
-- KEYS[2] group zset
-- KEYS[3] groups set
-- KEYS[4] unique lock key
-- KEYS[5] asynq:queues, optional: registered first, as in enqueue.lua
-- ARGV[1] encoded TaskMessage
-- ARGV[2] task id
-- ARGV[3] now, Unix seconds
-- ARGV[4] group name
-- ARGV[5] lock TTL, whole seconds
-- ARGV[6] queue name, optional (needed with KEYS[5])
-- Returns 1 added, -1 lock held by another task, 0 task id taken (lock left behind).
-- As in Go, the hash gets no unique_key field: the lock expires by its TTL.
if KEYS[5] then
    local added = redis.pcall("SADD", KEYS[5], ARGV[6])
    if type(added) == "table" and added.err then
        -- Keep Redis' own error code first (READONLY after a failover, OOM, ...):
        -- clients act on it, e.g. redis-py reconnects a Sentinel client on READONLY.
        return redis.error_reply(added.err .. " (registering the queue in asynq:queues; "
            .. "nothing stored)")
    end
end
local ok = redis.call("SET", KEYS[4], ARGV[2], "NX", "EX", ARGV[5])
if not ok then
    return -1
end
if redis.call("EXISTS", KEYS[1]) == 1 then
    return 0
end
-- The group zset and the groups set before the hash; when one is of the wrong type, what
-- this script wrote before is taken back, so a failure leaves nothing behind.
local added = redis.pcall("ZADD", KEYS[2], ARGV[3], ARGV[2])
if type(added) == "table" and added.err then
    redis.call("DEL", KEYS[4])
    return redis.error_reply(added.err)
end
local grouped = redis.pcall("SADD", KEYS[3], ARGV[4])
if type(grouped) == "table" and grouped.err then
    if added == 1 then
        redis.call("ZREM", KEYS[2], ARGV[2])
    end
    redis.call("DEL", KEYS[4])
    return redis.error_reply(grouped.err)
end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "aggregating", "group", ARGV[4])
return 1
