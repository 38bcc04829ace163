-- archive: a task failed for good (retries exhausted, SkipRetry, ...) (wire spec 3.11).
-- KEYS[1] task hash
-- KEYS[2] active list
-- KEYS[3] lease zset
-- KEYS[4] archived zset
-- KEYS[5] daily processed counter asynq:{q}:processed:<YYYY-MM-DD>
-- KEYS[6] daily failed counter asynq:{q}:failed:<YYYY-MM-DD>
-- KEYS[7] all-time processed counter
-- KEYS[8] all-time failed counter
-- ARGV[1] task id
-- ARGV[2] encoded TaskMessage (error_msg, last_failed_at already updated)
-- ARGV[3] now, Unix seconds: the archived score
-- ARGV[4] age cutoff, Unix seconds (now - 90 days)
-- ARGV[5] size cap (10000)
-- ARGV[6] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[7] MaxInt64 as decimal text; both all-time counters wrap to 1 there
-- ARGV[8] task key prefix asynq:{q}:t: (Go passes it as KEYS[9]; it is not a key)
-- ARGV[9] attempt token (pyasynq fencing; "" skips the check)
-- ARGV[10] 1 to add 1 to the hash field `crashes` (pyasynq recoverer), else 0
-- ARGV[11] lease cutoff, Unix seconds (pyasynq recoverer; "" skips the check): the cutoff
--          its listing used, so a lease renewed since is left alone (see retry.lua)
-- Returns 1, or the error replies:
--   LEASE LOST  ARGV[9] is non-empty and the hash's `attempt` is not "<ARGV[9]> <the id's
--               lease score>" (see dequeue.lua), or ARGV[11] is non-empty and the id's
--               lease score is above it; nothing changed
--   NOT FOUND   the id was not in active, or not in lease (earlier removals stay done)
-- After the ZADD the archive is trimmed: members scored <= cutoff, then ranks 0 .. N-cap,
-- are removed and their task hashes deleted (so at most cap-1 remain). The hash gets msg and
-- state=archived, loses `attempt`. Counters always change. The uniqueness lock is kept.
-- pyasynq waiters: when the hash has `pyasynq:notify` (see watch_result.lua), PUBLISH
-- "archived:<len(KEYS[1])>:<KEYS[1]><ARGV[2]>" (the msg, with its error) to each channel in
-- it, and drop the field.
local attempt, notify = unpack(redis.call("HMGET", KEYS[1], "attempt", "pyasynq:notify"))
if ARGV[9] ~= ""
    and attempt ~= ARGV[9] .. " " .. (redis.call("ZSCORE", KEYS[3], ARGV[1]) or "-")
    and redis.call("EXISTS", KEYS[1]) == 1 then
    return redis.error_reply("LEASE LOST")
end
if ARGV[11] ~= "" then
    local score = redis.call("ZSCORE", KEYS[3], ARGV[1])
    if score and tonumber(score) > tonumber(ARGV[11]) then
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
local old = redis.call("ZRANGEBYSCORE", KEYS[4], "-inf", ARGV[4])
for _, id in ipairs(old) do
    redis.call("DEL", ARGV[8] .. id)
end
redis.call("ZREMRANGEBYSCORE", KEYS[4], "-inf", ARGV[4])
local over = redis.call("ZRANGE", KEYS[4], 0, -tonumber(ARGV[5]))
for _, id in ipairs(over) do
    redis.call("DEL", ARGV[8] .. id)
end
redis.call("ZREMRANGEBYRANK", KEYS[4], 0, -tonumber(ARGV[5]))
redis.call("HSET", KEYS[1], "msg", ARGV[2], "state", "archived")
redis.call("HDEL", KEYS[1], "attempt", "pyasynq:notify")
if ARGV[10] == "1" then
    redis.call("HINCRBY", KEYS[1], "crashes", 1)
end
if redis.call("INCR", KEYS[5]) == 1 then
    redis.call("EXPIREAT", KEYS[5], ARGV[6])
end
if redis.call("INCR", KEYS[6]) == 1 then
    redis.call("EXPIREAT", KEYS[6], ARGV[6])
end
if redis.call("GET", KEYS[7]) == ARGV[7] then
    redis.call("SET", KEYS[7], 1)
    redis.call("SET", KEYS[8], 1)
else
    redis.call("INCR", KEYS[7])
    redis.call("INCR", KEYS[8])
end
if notify then
    local note = "archived:" .. #KEYS[1] .. ":" .. KEYS[1] .. ARGV[2]
    for ch in string.gmatch(notify, "%S+") do
        redis.call("PUBLISH", ch, note)
    end
end
return 1
