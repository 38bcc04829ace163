-- schedule: store a new task to run at a later time (wire spec 3.3).
-- KEYS[1] task hash
-- KEYS[2] scheduled zset
-- KEYS[3] asynq:queues, optional: registered first, as in enqueue.lua
-- ARGV[1] encoded TaskMessage
-- ARGV[2] process-at, Unix seconds
-- ARGV[3] task id
-- ARGV[4] queue name, optional (needed with KEYS[3])
-- Returns 1 when scheduled, 0 when the task id is already taken.
if KEYS[3] then
    local added = redis.pcall("SADD", KEYS[3], ARGV[4])
    if type(added) == "table" and added.err then
        -- Keep Redis' own error code first (READONLY after a failover, OOM, ...):
        -- clients act on it, e.g. redis-py reconnects a Sentinel client on READONLY.
        return redis.error_reply(added.err .. " (registering the queue in asynq:queues; "
            .. "nothing stored)")
    end
end
if redis.call("EXISTS", KEYS[1]) == 1 then
    return 0
end
-- The zset first: one of the wrong type fails the script before anything is written.
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[3])
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "scheduled")
return 1
