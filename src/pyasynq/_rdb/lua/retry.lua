-- retry: a task failed and will run again later (wire spec 3.10).
-- KEYS[1] task hash
-- KEYS[2] active list
-- KEYS[3] lease zset
-- KEYS[4] retry zset
-- KEYS[5] daily processed counter asynq:{q}:processed:<YYYY-MM-DD>
-- KEYS[6] daily failed counter asynq:{q}:failed:<YYYY-MM-DD>
-- KEYS[7] all-time processed counter
-- KEYS[8] all-time failed counter
-- ARGV[1] task id
-- ARGV[2] encoded TaskMessage (retried, error_msg, last_failed_at already updated)
-- ARGV[3] retry-at, Unix seconds
-- ARGV[4] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[5] 1 when the error counts as a failure, else 0 (then no counter changes)
-- ARGV[6] MaxInt64 as decimal text; both all-time counters wrap to 1 there
-- ARGV[7] attempt token (pyasynq fencing; "" skips the check)
-- ARGV[8] 1 to add 1 to the hash field `crashes` (pyasynq recoverer), else 0
-- ARGV[9] lease cutoff, Unix seconds (pyasynq recoverer; "" skips the check): the cutoff its
--         listing used, so a lease renewed since (the task recovered by another worker and
--         leased again) is left alone
-- Returns 1, or the error replies:
--   LEASE LOST  ARGV[7] is non-empty and the hash's `attempt` is not "<ARGV[7]> <the id's
--               lease score>" (see dequeue.lua), or ARGV[9] is non-empty and the id's
--               lease score is above it; nothing changed
--   NOT FOUND   the id was not in active, or not in lease (earlier removals stay done)
-- The hash gets msg and state=retry, loses `attempt`. The uniqueness lock is kept.
local attempt = redis.call("HGET", KEYS[1], "attempt")
if ARGV[7] ~= ""
    and attempt ~= ARGV[7] .. " " .. (redis.call("ZSCORE", KEYS[3], ARGV[1]) or "-")
    and redis.call("EXISTS", KEYS[1]) == 1 then
    return redis.error_reply("LEASE LOST")
end
if ARGV[9] ~= "" then
    local score = redis.call("ZSCORE", KEYS[3], ARGV[1])
    if score and tonumber(score) > tonumber(ARGV[9]) then
        return redis.error_reply("LEASE LOST")
    end
end
if redis.call("LREM", KEYS[2], -1, ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
if redis.call("ZREM", KEYS[3], ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
redis.call("ZADD", KEYS[4], ARGV[3], ARGV[1])
redis.call("HSET", KEYS[1], "msg", ARGV[2], "state", "retry")
redis.call("HDEL", KEYS[1], "attempt")
if ARGV[8] == "1" then
    redis.call("HINCRBY", KEYS[1], "crashes", 1)
end
if ARGV[5] == "1" then
    if redis.call("INCR", KEYS[5]) == 1 then
        redis.call("EXPIREAT", KEYS[5], ARGV[4])
    end
    if redis.call("INCR", KEYS[6]) == 1 then
        redis.call("EXPIREAT", KEYS[6], ARGV[4])
    end
    if redis.call("GET", KEYS[7]) == ARGV[6] then
        redis.call("SET", KEYS[7], 1)
        redis.call("SET", KEYS[8], 1)
    else
        redis.call("INCR", KEYS[7])
        redis.call("INCR", KEYS[8])
    end
end
return 1
