-- limit_wake: release a task's capacity and move parked waiters back to pending (pyasynq only).
-- KEYS[1] holders zset  asynq:{q}:pyasynq:limit:<name>:running   id -> lease expiry
-- KEYS[2] starts zset   asynq:{q}:pyasynq:limit:<name>:starts
-- KEYS[3] waiters zset  asynq:{q}:pyasynq:limit:<name>:waiting   id -> time parked
-- KEYS[4] lease zset
-- KEYS[5] scheduled zset
-- KEYS[6] pending list
-- KEYS[7] limits registry hash asynq:{q}:pyasynq:limits   name -> "<cap> <rate> <per> <seen>"
-- ARGV[1] now, Unix seconds (float)
-- ARGV[2] now, Unix nanoseconds (pending_since of woken tasks)
-- ARGV[3] concurrency cap (0 = none)
-- ARGV[4] rate: most starts per window (0 = none)
-- ARGV[5] window, seconds (float)
-- ARGV[6] task key prefix asynq:{q}:t:
-- ARGV[7] seconds a woken waiter's reserved slot is held for it (cap only)
-- ARGV[8] limit name (for the registry)
-- ARGV[9] wake channel: PUBLISH ARGV[10] there when a waiter was woken ("" = don't)
-- ARGV[10] queue name
-- ARGV[11] task id whose capacity to release ("" = none: just wake)
-- ARGV[12] its attempt token
-- ARGV[13] grace, seconds (see limit_acquire.lua ARGV[9])
-- ARGV[14] hand-over token ("" = none): the releasing worker has a free slot and takes the
--          first waiter itself, leased with this attempt token, instead of via pending
-- ARGV[15] the hand-over's lease expiry, integer Unix seconds
-- KEYS[8] active list, KEYS[9] paused flag (with a hand-over token)
-- Returns {woken, seconds until the rate window next frees a start, -1 when there is no
-- rate limit or no waiter}, then, when a waiter was handed over, its id and msg.
-- A hand-over moves the waiter as a forward and a dequeue would (scheduled -> active,
-- lease, state=active, `attempt` fence; not while the queue is paused) and admits it here
-- (a holder entry, its start in the rate window).
-- The release is fenced: the holder entry stays when the task's `attempt` names another
-- token (another worker runs it now). Waiters are woken oldest first, as many as there is
-- room for: each leaves scheduled (skipped, and dropped from the index, when it is no longer
-- there: forwarded, run or deleted meanwhile) and is pushed to the front of pending with
-- asynq's pending state. Under a cap, the slot is reserved for it (a holder entry expiring
-- after ARGV[7] s, confirmed by limit_acquire.lua) so fresh tasks cannot take it first.
local now, cap, rate, per = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4]),
    tonumber(ARGV[5])
redis.call("HSET", KEYS[7], ARGV[8], ARGV[3] .. " " .. ARGV[4] .. " " .. ARGV[5] .. " " .. ARGV[1])
if ARGV[11] ~= "" then
    -- pcall: a task key that is not a hash (corrupt) has no fence; its slot is released.
    local ok, a = pcall(redis.call, "HGET", ARGV[6] .. ARGV[11], "attempt")
    if not ok or not a or string.sub(a, 1, #ARGV[12] + 1) == ARGV[12] .. " " then
        redis.call("ZREM", KEYS[1], ARGV[11])
    end
end
local room = -1
if cap > 0 then
    local alive = now - tonumber(ARGV[13])
    for _, held in ipairs(redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", "(" .. tostring(alive))) do
        local s = redis.call("ZSCORE", KEYS[4], held)
        if s and tonumber(s) > alive then
            redis.call("ZADD", KEYS[1], s, held)
        else
            redis.call("ZREM", KEYS[1], held)
        end
    end
    room = cap - redis.call("ZCARD", KEYS[1])
end
local next_free = -1
if rate > 0 then
    redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", tostring(now - per))
    local used = redis.call("ZCARD", KEYS[2])
    if room < 0 or rate - used < room then
        room = rate - used
    end
    if used > 0 and redis.call("EXISTS", KEYS[3]) == 1 then
        local oldest = redis.call("ZRANGE", KEYS[2], 0, 0, "WITHSCORES")
        next_free = tonumber(oldest[2]) + per - now
    end
end
local take = ARGV[14] ~= "" and redis.call("EXISTS", KEYS[9]) == 0
local taken = nil
local woken, looked = 0, 0
while woken < room and looked < room + 100 do
    local first = redis.call("ZRANGE", KEYS[3], 0, 0)
    local id = first[1]
    if not id then
        break
    end
    looked = looked + 1
    redis.call("ZREM", KEYS[3], id)
    local key = ARGV[6] .. id
    local msg = redis.call("HGET", key, "msg")
    if msg and redis.call("ZREM", KEYS[5], id) == 1 then
        if take and not taken then
            taken = { id, msg }
            redis.call("LPUSH", KEYS[8], id)
            redis.call("ZADD", KEYS[4], ARGV[15], id)
            redis.call("HSET", key, "state", "active", "attempt", ARGV[14] .. " " .. ARGV[15])
            redis.call("HDEL", key, "pending_since")
            if cap > 0 then
                redis.call("ZADD", KEYS[1], ARGV[15], id)
            end
            if rate > 0 then
                redis.call("ZADD", KEYS[2], ARGV[1], id .. " " .. ARGV[14])
                redis.call("PEXPIRE", KEYS[2], math.ceil(per * 1000) + 1000)
            end
        else
            redis.call("RPUSH", KEYS[6], id)
            redis.call("HSET", key, "state", "pending", "pending_since", ARGV[2])
            if cap > 0 then
                redis.call("ZADD", KEYS[1], now + tonumber(ARGV[7]), id)
            end
        end
        woken = woken + 1
    end
end
if woken > (taken and 1 or 0) and ARGV[9] ~= "" then
    redis.call("PUBLISH", ARGV[9], ARGV[10])
end
if taken then
    return { woken, tostring(next_free), taken[1], taken[2] }
end
return { woken, tostring(next_free) }
