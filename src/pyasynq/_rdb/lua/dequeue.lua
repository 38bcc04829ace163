-- dequeue: move the oldest pending task to active and lease it (wire spec 3.6).
-- KEYS[1] pending list
-- KEYS[2] paused flag (string)
-- KEYS[3] active list
-- KEYS[4] lease zset
-- KEYS[5] quarantine hash asynq:{q}:pyasynq:quarantine (pyasynq only)
-- ARGV[1] lease expiry, Unix seconds (now + 30 s)
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3] attempt token (pyasynq fencing; "" = none)
-- Returns [task id, encoded TaskMessage, pending_since], or nil when the queue is paused or
-- empty. (Go returns the msg alone; pyasynq also needs the id to quarantine an undecodable
-- msg, and the task's pending_since (ns; "" when the hash has none) for its queue wait.)
-- As in Go: RPOPLPUSH pending (tail = oldest) to active (head), state=active,
-- pending_since deleted, lease score = ARGV[1]. pyasynq also stores the attempt token in
-- field `attempt`, which later writes compare to detect a lost lease.
-- pyasynq robustness: an id without a task hash (or without `msg`) is taken back out of
-- active and recorded in the quarantine hash (id -> reason), then the next id is tried, at
-- most 10 times per call, so a dangling id never blocks the queue.
if redis.call("EXISTS", KEYS[2]) == 1 then
    return nil
end
for _ = 1, 10 do
    local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
    if not id then
        return nil
    end
    local key = ARGV[2] .. id
    local msg = redis.call("HGET", key, "msg")
    if msg then
        local since = redis.call("HGET", key, "pending_since") or ""
        if ARGV[3] ~= "" then
            redis.call("HSET", key, "state", "active", "attempt", ARGV[3])
            redis.call("HDEL", key, "pending_since")
        else
            redis.call("HSET", key, "state", "active")
            redis.call("HDEL", key, "pending_since", "attempt")
        end
        redis.call("ZADD", KEYS[4], ARGV[1], id)
        return { id, msg, since }
    end
    redis.call("LREM", KEYS[3], 1, id) -- just pushed: found at the head
    if redis.call("EXISTS", key) == 1 then
        redis.call("HSET", KEYS[5], id, "no msg field")
    else
        redis.call("HSET", KEYS[5], id, "no task hash")
    end
end
return nil
