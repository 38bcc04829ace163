-- scheduler_enqueue: a scheduler enqueues one tick of a periodic task, at most once per
-- (entry identity, fire time) across every scheduler running the entry (pyasynq only).
-- The task is stored exactly as the wrapped operation stores it (wire spec 3.1 to 3.4),
-- so Go workers, the Go CLI and asynqmon see an ordinary task.
-- KEYS[1] tick marker asynq:{q}:pyasynq:tick:<entry identity>:<fire time>
-- KEYS[2..] the wrapped operation's KEYS, in its order:
--   enqueue              task hash, pending
--   enqueue_unique       unique lock, task hash, pending
--   schedule             task hash, scheduled
--   schedule_unique      unique lock, task hash, scheduled
--   add_to_group         task hash, group zset, groups set
--   add_to_group_unique  task hash, group zset, groups set, unique lock
-- ARGV[1] marker TTL, whole seconds
-- ARGV[2] the wrapped operation's name (one of the above)
-- ARGV[3..] the wrapped operation's ARGV, in its order (see lua/<name>.lua)
-- Returns 2 when the marker exists: another scheduler already handled this tick and
-- nothing is written. Otherwise the wrapped operation's reply (1 stored, 0 task id
-- taken, -1 unique lock held by another task), and the marker is set to the task id
-- with the TTL, so the tick counts as handled whatever the reply.
if redis.call("EXISTS", KEYS[1]) == 1 then
    return 2
end

local op = ARGV[2]
local function k(i) return KEYS[i + 1] end
local function a(i) return ARGV[i + 2] end
local function lock(key, id, ttl)
    return redis.call("SET", key, id, "NX", "EX", ttl)
end

local id, reply
if op == "enqueue" then
    id = a(2)
    if redis.call("EXISTS", k(1)) == 1 then
        reply = 0
    else
        redis.call("HSET", k(1), "msg", a(1), "state", "pending", "pending_since", a(3))
        redis.call("LPUSH", k(2), id)
        reply = 1
    end
elseif op == "enqueue_unique" then
    id = a(1)
    if not lock(k(1), id, a(2)) then
        reply = -1
    elseif redis.call("EXISTS", k(2)) == 1 then
        reply = 0 -- as in Go, the lock just taken stays (it expires by TTL)
    else
        redis.call("HSET", k(2), "msg", a(3), "state", "pending", "pending_since", a(4),
            "unique_key", k(1))
        redis.call("LPUSH", k(3), id)
        reply = 1
    end
elseif op == "schedule" then
    id = a(3)
    if redis.call("EXISTS", k(1)) == 1 then
        reply = 0
    else
        redis.call("HSET", k(1), "msg", a(1), "state", "scheduled")
        redis.call("ZADD", k(2), a(2), id)
        reply = 1
    end
elseif op == "schedule_unique" then
    id = a(1)
    if not lock(k(1), id, a(2)) then
        reply = -1
    elseif redis.call("EXISTS", k(2)) == 1 then
        reply = 0
    else
        redis.call("HSET", k(2), "msg", a(4), "state", "scheduled", "unique_key", k(1))
        redis.call("ZADD", k(3), a(3), id)
        reply = 1
    end
elseif op == "add_to_group" or op == "add_to_group_unique" then
    id = a(2)
    if op == "add_to_group_unique" and not lock(k(4), id, a(5)) then
        reply = -1
    elseif redis.call("EXISTS", k(1)) == 1 then
        reply = 0
    else
        -- As in Go, the hash gets no unique_key field even with a lock.
        redis.call("HSET", k(1), "msg", a(1), "state", "aggregating", "group", a(4))
        redis.call("ZADD", k(2), a(3), id)
        redis.call("SADD", k(3), a(4))
        reply = 1
    end
else
    return redis.error_reply("ERR scheduler_enqueue: unknown operation " .. tostring(op))
end

redis.call("SET", KEYS[1], id, "EX", ARGV[1])
return reply
