-- dequeue: move the oldest pending task to active and lease it (wire spec 3.6).
-- KEYS[1] pending list
-- KEYS[2] paused flag (string)
-- KEYS[3] active list
-- KEYS[4] lease zset
-- KEYS[5] quarantine hash asynq:{q}:pyasynq:quarantine (pyasynq only)
-- ARGV[1] lease expiry, integer Unix seconds (now + 30 s)
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3] attempt token (pyasynq fencing; "" = none)
-- ARGV[4] the most dangling ids to skip in this call (>= 1)
-- Returns nil when the queue is paused, or empty with nothing skipped; else
-- [task id, encoded TaskMessage, pending_since, skipped], id and msg nil when no task was
-- found. (Go returns the msg alone; pyasynq also needs the id to quarantine an undecodable
-- msg, and the task's pending_since (ns; "" when the hash has none) for its queue wait.)
-- As in Go: RPOPLPUSH pending (tail = oldest) to active (head), state=active,
-- pending_since deleted, lease score = ARGV[1]. pyasynq also stores the attempt token and
-- the lease expiry it wrote in field `attempt` ("<token> <expiry>"; extend_leases.lua keeps
-- the expiry current). Later writes go ahead only while `attempt` equals their token, a
-- space and the id's current lease score: another pyasynq dequeue changes the token,
-- pyasynq's recoverer, forwarder and outcomes delete the field, and Go, which never
-- touches `attempt`, can only run the task again through its recoverer and its dequeue,
-- which leases it until Go's now + 30 s, at least 60 s after the lease Go found expired
-- (its recoverer takes leases expired 30 s ago): the score no longer matches.
-- pyasynq robustness: an id without a task hash (or without `msg`, or whose key is not a
-- hash: evicted, or written by hand) is taken back off active and recorded in the
-- quarantine hash (id -> reason); the next id is tried, up to ARGV[4] of them, so
-- dangling ids never hold the queue up.
-- `skipped` counts them, for the caller to report.
-- Runs when Redis is full (flags=allow-oom, see scripts.py): it adds a lease entry and a
-- field, and lets the task be finished, which frees it.
if redis.call("EXISTS", KEYS[2]) == 1 then
    return nil
end
local fence = ARGV[3] .. " " .. ARGV[1]
local skipped, most = 0, tonumber(ARGV[4])
while skipped < most do
    local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
    if not id then
        break
    end
    local key = ARGV[2] .. id
    -- pcall: a task key of another type (a string, say) is quarantined, not an error
    -- that would leave the id in active with no lease and stop every dequeue behind it.
    -- One HMGET for both fields (a missing field or key reads as false).
    local got = redis.pcall("HMGET", key, "msg", "pending_since")
    local bad = got.err
    local msg = not bad and got[1]
    if msg then
        local since = got[2] or ""
        if ARGV[3] ~= "" then
            redis.call("HSET", key, "state", "active", "attempt", fence)
            redis.call("HDEL", key, "pending_since")
        else
            redis.call("HSET", key, "state", "active")
            redis.call("HDEL", key, "pending_since", "attempt")
        end
        redis.call("ZADD", KEYS[4], ARGV[1], id)
        return { id, msg, since, skipped }
    end
    redis.call("LPOP", KEYS[3]) -- the id just pushed onto active's head
    skipped = skipped + 1
    if bad then
        redis.call("HSET", KEYS[5], id, "task key holds a " .. redis.call("TYPE", key).ok
            .. ", not a hash")
    elseif redis.call("EXISTS", key) == 1 then
        redis.call("HSET", KEYS[5], id, "no msg field")
    else
        redis.call("HSET", KEYS[5], id, "no task hash")
    end
end
if skipped == 0 then
    return nil
end
return { false, false, "", skipped }
