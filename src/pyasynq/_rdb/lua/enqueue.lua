-- enqueue: store a new task and make it pending (wire spec 3.1).
-- KEYS[1] task hash asynq:{q}:t:<id>
-- KEYS[2] pending list
-- KEYS[3] asynq:queues, optional: the queue is added to it when the push found the pending
--         list empty (left out in a Cluster, where it hashes to another slot). asynq
--         registers on every enqueue; a non-empty pending list means some enqueue
--         registered the queue since it last was empty, and removing a queue (asynq's and
--         pyasynq's `queue rm`) deletes its pending list too: docs/redis-schema.md,
--         "asynq:queues".
-- ARGV[1] encoded TaskMessage
-- ARGV[2] task id
-- ARGV[3] now, Unix nanoseconds (pending_since)
-- ARGV[4] queue name, optional (needed with KEYS[3] or ARGV[5])
-- ARGV[5] wake channel, optional: PUBLISH the queue name there once stored, when the
--         pending list was empty ("" = don't): a pyasynq worker idles only after finding
--         its queues empty, so a list that already held tasks has no idle worker to wake.
-- Returns 1 when enqueued, 0 when the task id is already taken in this queue. A failed
-- registration is an error reply, and then nothing is stored.
-- Steady state (the list holds tasks): EXISTS, LPUSH, HSET; LPUSH's reply (the new
-- length) tells whether the list was empty, so no LLEN is needed.
if redis.call("EXISTS", KEYS[1]) == 1 then
    return 0
end
-- The list first: one of the wrong type fails the script before anything is written.
local fresh = redis.call("LPUSH", KEYS[2], ARGV[2]) == 1
if KEYS[3] and fresh then
    local added = redis.pcall("SADD", KEYS[3], ARGV[4])
    if type(added) == "table" and added.err then
        -- The list held only our id: take it back, so that no task is stored whose queue
        -- Go's Inspector cannot see. Keep Redis' own error code first (READONLY after a
        -- failover, OOM, ...): clients act on it.
        redis.call("LPOP", KEYS[2])
        return redis.error_reply(added.err .. " (registering the queue in asynq:queues; "
            .. "nothing stored)")
    end
end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "pending", "pending_since", ARGV[3])
if fresh and ARGV[5] and ARGV[5] ~= "" then
    -- Best effort (workers also poll): a user without the channel in its ACL still enqueues.
    redis.pcall("PUBLISH", ARGV[5], ARGV[4])
end
return 1
