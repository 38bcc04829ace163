-- enqueue_batch: enqueue many new tasks of one queue as pending, each exactly as
-- enqueue.lua does (wire spec 3.1), in one call (pyasynq's Client.enqueue_many).
-- KEYS[1] pending list
-- KEYS[2..n+1] the task hashes, one per task, in the order of ARGV's tasks
-- KEYS[n+2] asynq:queues, optional: registered first when the pending list is empty, as
--           in enqueue.lua
-- ARGV[1] now, Unix nanoseconds (pending_since)
-- ARGV[2] queue name
-- ARGV[3] wake channel: PUBLISH the queue name there once something is stored, when the
--         pending list was empty, as in enqueue.lua ("" = don't)
-- ARGV[4..] per task: task id, encoded TaskMessage
-- Returns one reply per task, in order: 1 enqueued, 0 task id already taken (also by an
-- earlier task of the same call). The pending list gets the ids in ARGV order, as one
-- LPUSH per task would. A failed registration is an error reply, and nothing is stored.
local n = (#ARGV - 3) / 2
local fresh = redis.call("LLEN", KEYS[1]) == 0
if #KEYS > n + 1 and fresh then
    local added = redis.pcall("SADD", KEYS[n + 2], ARGV[2])
    if type(added) == "table" and added.err then
        -- Keep Redis' own error code first (READONLY after a failover, OOM, ...):
        -- clients act on it, e.g. redis-py reconnects a Sentinel client on READONLY.
        return redis.error_reply(added.err .. " (registering the queue in asynq:queues; "
            .. "nothing stored)")
    end
end
local now = ARGV[1]
local replies = {}
local ids = {}
for i = 1, n do
    local key = KEYS[i + 1]
    if redis.call("EXISTS", key) == 1 then
        replies[i] = 0
    else
        redis.call("HSET", key, "msg", ARGV[3 + 2 * i], "state", "pending", "pending_since", now)
        ids[#ids + 1] = ARGV[2 + 2 * i]
        replies[i] = 1
    end
end
-- One LPUSH per 1,000 ids: fewer commands, and unpack stays far below Lua's stack limit.
for first = 1, #ids, 1000 do
    redis.call("LPUSH", KEYS[1], unpack(ids, first, math.min(first + 999, #ids)))
end
if fresh and #ids > 0 and ARGV[3] ~= "" then
    -- Best effort (workers also poll): a user without the channel in its ACL still enqueues.
    redis.pcall("PUBLISH", ARGV[3], ARGV[2])
end
return replies
