-- limit_acquire: let a just-dequeued task of a limited type start, or park it (pyasynq only).
-- KEYS[1] holders zset  asynq:{q}:pyasynq:limit:<name>:running   id -> lease expiry
-- KEYS[2] starts zset   asynq:{q}:pyasynq:limit:<name>:starts    "<id> <token>" -> start time
-- KEYS[3] waiters zset  asynq:{q}:pyasynq:limit:<name>:waiting   id -> time parked
-- KEYS[4] active list
-- KEYS[5] lease zset
-- KEYS[6] scheduled zset
-- ARGV[1] now, Unix seconds (float)
-- ARGV[2] concurrency cap (0 = none)
-- ARGV[3] rate: most starts per window (0 = none)
-- ARGV[4] window, seconds (float)
-- ARGV[5] task key prefix asynq:{q}:t:
-- ARGV[6] Unix seconds a task parked by the cap waits at most in scheduled (a fallback:
--         releases and the limiter component wake waiters long before)
-- ARGV[7] task id
-- ARGV[8] attempt token the task was dequeued with
-- ARGV[9] grace, seconds: a holder counts until its lease expired this long ago (the
--         recoverer's cutoff), so a lease written in whole seconds never frees it early
-- Returns {1} admitted, {0, until} parked in scheduled until `until` (Unix s), or {-1} when
-- the task is no longer ours (its `attempt` fence changed): then nothing was touched.
-- Holders are pruned lazily: an entry whose recorded expiry passed (by the grace) is kept (with the new
-- expiry) while the task's lease entry says it is still leased (the heartbeat extended it),
-- and removed otherwise (finished, or its worker died), so a crashed worker's capacity frees
-- when its lease expires. A task already holding (re-dequeued after a recovery, or woken
-- with a reservation by limit_wake.lua) is admitted without counting twice.
-- Parking keeps asynq's state: the task leaves active and lease, enters scheduled with
-- state=scheduled (a Go forwarder may move it back to pending; that is fine), and its id is
-- indexed in the waiters zset, which limit_wake.lua reads to move it back early.
local now, cap, rate, per = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
    tonumber(ARGV[4])
local id, token = ARGV[7], ARGV[8]
local key = ARGV[5] .. id
local lease = redis.call("ZSCORE", KEYS[5], id)
if not lease or redis.call("HGET", key, "attempt") ~= token .. " " .. lease then
    return { -1 }
end
local parked_until = nil
if cap > 0 and not redis.call("ZSCORE", KEYS[1], id) then
    local alive = now - tonumber(ARGV[9])
    for _, held in ipairs(redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", "(" .. tostring(alive))) do
        local s = redis.call("ZSCORE", KEYS[5], held)
        if s and tonumber(s) > alive then
            redis.call("ZADD", KEYS[1], s, held)
        else
            redis.call("ZREM", KEYS[1], held)
        end
    end
    if redis.call("ZCARD", KEYS[1]) >= cap then
        parked_until = tonumber(ARGV[6])
    end
end
if not parked_until and rate > 0 then
    redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", tostring(now - per))
    if redis.call("ZCARD", KEYS[2]) >= rate then
        local oldest = redis.call("ZRANGE", KEYS[2], 0, 0, "WITHSCORES")
        parked_until = tonumber(oldest[2]) + per
    end
end
if not parked_until then
    if cap > 0 then
        redis.call("ZADD", KEYS[1], lease, id)
    end
    if rate > 0 then
        redis.call("ZADD", KEYS[2], ARGV[1], id .. " " .. token)
        redis.call("PEXPIRE", KEYS[2], math.ceil(per * 1000) + 1000)
    end
    redis.call("ZREM", KEYS[3], id)
    return { 1 }
end
local due = math.ceil(parked_until)
redis.call("LREM", KEYS[4], 0, id)
redis.call("ZREM", KEYS[5], id)
redis.call("ZADD", KEYS[6], due, id)
redis.call("HSET", key, "state", "scheduled")
redis.call("HDEL", key, "attempt")
redis.call("ZADD", KEYS[3], "NX", ARGV[1], id)
return { 0, tostring(parked_until) }
