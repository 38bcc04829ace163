-- enqueue_unique: take the uniqueness lock, then enqueue as pending (wire spec 3.2).
-- KEYS[1] unique lock key
-- KEYS[2] task hash
-- KEYS[3] pending list
-- KEYS[4] asynq:queues, optional: registered when the push found the pending list empty,
--         as in enqueue.lua
-- ARGV[1] task id
-- ARGV[2] lock TTL, whole seconds
-- ARGV[3] encoded TaskMessage
-- ARGV[4] now, Unix nanoseconds
-- ARGV[5] queue name, optional (needed with KEYS[4] or ARGV[6])
-- ARGV[6] wake channel, optional: PUBLISH the queue name there once stored, when the
--         pending list was empty, as in enqueue.lua ("" = don't)
-- Returns 1 enqueued, -1 lock held by another task, 0 task id taken. A failed
-- registration is an error reply, and then nothing is stored (the lock is given back).
-- As in Go asynq, an id conflict leaves the lock just taken in place (it expires by TTL).
local ok = redis.call("SET", KEYS[1], ARGV[1], "NX", "EX", ARGV[2])
if not ok then
    return -1
end
if redis.call("EXISTS", KEYS[2]) == 1 then
    return 0
end
-- The list before the hash; a list of the wrong type gives the lock just taken back, so
-- a failure leaves nothing behind. LPUSH's reply (the new length) tells whether the list
-- was empty.
local pushed = redis.pcall("LPUSH", KEYS[3], ARGV[1])
if type(pushed) == "table" and pushed.err then
    redis.call("DEL", KEYS[1])
    return redis.error_reply(pushed.err)
end
local fresh = pushed == 1
if KEYS[4] and fresh then
    local added = redis.pcall("SADD", KEYS[4], ARGV[5])
    if type(added) == "table" and added.err then
        -- The list held only our id: take it and the lock back, so that no task is stored
        -- whose queue Go's Inspector cannot see. Keep Redis' own error code first.
        redis.call("LPOP", KEYS[3])
        redis.pcall("DEL", KEYS[1])  -- else (an ACL without DEL) it expires by its TTL
        return redis.error_reply(added.err .. " (registering the queue in asynq:queues; "
            .. "nothing stored)")
    end
end
redis.call("HSET", KEYS[2], "msg", ARGV[3], "state", "pending", "pending_since", ARGV[4],
    "unique_key", KEYS[1])
if fresh and ARGV[6] and ARGV[6] ~= "" then
    -- Best effort (workers also poll): a user without the channel in its ACL still enqueues.
    redis.pcall("PUBLISH", ARGV[6], ARGV[5])
end
return 1
