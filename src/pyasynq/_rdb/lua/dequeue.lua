-- dequeue: move the oldest pending task to active and lease it (wire spec 3.6).
-- KEYS[1] pending list
-- KEYS[2] paused flag (string)
-- KEYS[3] active list
-- KEYS[4] lease zset
-- KEYS[5] quarantine hash asynq:{q}:pyasynq:quarantine (pyasynq only)
-- ARGV[1] lease expiry, integer Unix seconds (now + 30 s)
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3] attempt token (pyasynq fencing; "" = none)
-- Returns [task id, encoded TaskMessage], or nil when the queue is paused or empty.
-- (Go returns the msg alone; pyasynq also needs the id to quarantine an undecodable msg.)
-- As in Go: RPOPLPUSH pending (tail = oldest) to active (head), state=active,
-- pending_since deleted, lease score = ARGV[1]. pyasynq also stores the attempt token and
-- the lease expiry it wrote in field `attempt` ("<token> <expiry>"; extend_leases.lua keeps
-- the expiry current). Later writes go ahead only while `attempt` equals their token, a
-- space and the id's current lease score: another pyasynq dequeue changes the token,
-- pyasynq's recoverer, forwarder and outcomes delete the field, and Go, which never
-- touches `attempt`, can only run the task again through its recoverer and its dequeue,
-- which leases it until Go's now + 30 s, at least 60 s after the lease Go found expired
-- (its recoverer takes leases expired 30 s ago): the score no longer matches.
-- pyasynq robustness: an id without a task hash (or without `msg`) is taken back out of
-- active and recorded in the quarantine hash (id -> reason), then the next id is tried, at
-- most 10 times per call, so a dangling id never blocks the queue.
if redis.call("EXISTS", KEYS[2]) == 1 then
    return nil
end
local fence = ARGV[3] .. " " .. ARGV[1]
for _ = 1, 10 do
    local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
    if not id then
        return nil
    end
    local key = ARGV[2] .. id
    local msg = redis.call("HGET", key, "msg")
    if msg then
        if ARGV[3] ~= "" then
            redis.call("HSET", key, "state", "active", "attempt", fence)
            redis.call("HDEL", key, "pending_since")
        else
            redis.call("HSET", key, "state", "active")
            redis.call("HDEL", key, "pending_since", "attempt")
        end
        redis.call("ZADD", KEYS[4], ARGV[1], id)
        return { id, msg }
    end
    redis.call("LREM", KEYS[3], 1, id) -- just pushed: found at the head
    if redis.call("EXISTS", key) == 1 then
        redis.call("HSET", KEYS[5], id, "no msg field")
    else
        redis.call("HSET", KEYS[5], id, "no task hash")
    end
end
return nil
