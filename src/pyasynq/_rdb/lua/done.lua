-- done: a task succeeded without retention; delete it and count it (wire spec 3.7).
-- KEYS[1] active list
-- KEYS[2] lease zset
-- KEYS[3] task hash
-- KEYS[4] daily processed counter asynq:{q}:processed:<YYYY-MM-DD>
-- KEYS[5] all-time processed counter
-- KEYS[6] uniqueness lock; passed only when msg.unique_key is non-empty
-- ARGV[1] task id
-- ARGV[2] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[3] MaxInt64 as decimal text; the all-time counter wraps to 1 there
-- ARGV[4] attempt token (pyasynq fencing; "" skips the check)
-- Returns 1, or the error replies:
--   LEASE LOST  ARGV[4] is non-empty and the hash's `attempt` is not "<ARGV[4]> <the id's
--               lease score>" (see dequeue.lua); nothing changed
--   NOT FOUND   the id was not in active, not in lease, or had no hash. Checked in that
--               order after each removal, as Go does, so earlier removals stay done.
-- The lock is deleted only while it still holds this task's id.
-- pyasynq waiters: when the hash has `pyasynq:notify` (see watch_result.lua), PUBLISH
-- "completed:<len(KEYS[3])>:<KEYS[3]><result>" to each channel in it.
local attempt, notify = unpack(redis.call("HMGET", KEYS[3], "attempt", "pyasynq:notify"))
if ARGV[4] ~= ""
    and attempt ~= ARGV[4] .. " " .. (redis.call("ZSCORE", KEYS[2], ARGV[1]) or "-")
    and redis.call("EXISTS", KEYS[3]) == 1 then
    return redis.error_reply("LEASE LOST")
end
if redis.call("LREM", KEYS[1], -1, ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
local result = notify and redis.call("HGET", KEYS[3], "result")
if redis.call("DEL", KEYS[3]) == 0 then
    return redis.error_reply("NOT FOUND")
end
if redis.call("INCR", KEYS[4]) == 1 then
    redis.call("EXPIREAT", KEYS[4], ARGV[2])
end
if redis.call("GET", KEYS[5]) == ARGV[3] then
    redis.call("SET", KEYS[5], 1)
else
    redis.call("INCR", KEYS[5])
end
if KEYS[6] and redis.call("GET", KEYS[6]) == ARGV[1] then
    redis.call("DEL", KEYS[6])
end
if notify then
    local note = "completed:" .. #KEYS[3] .. ":" .. KEYS[3] .. (result or "")
    for ch in string.gmatch(notify, "%S+") do
        redis.call("PUBLISH", ch, note)
    end
end
return 1
