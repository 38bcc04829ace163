-- mark_complete: a task with retention succeeded; keep it as completed (wire spec 3.8).
-- KEYS[1] active list
-- KEYS[2] lease zset
-- KEYS[3] completed zset
-- KEYS[4] task hash
-- KEYS[5] daily processed counter asynq:{q}:processed:<YYYY-MM-DD>
-- KEYS[6] all-time processed counter
-- KEYS[7] uniqueness lock; passed only when msg.unique_key is non-empty
-- ARGV[1] task id
-- ARGV[2] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[3] completed score = completion time + retention, Unix seconds
-- ARGV[4] encoded TaskMessage with completed_at set
-- ARGV[5] MaxInt64 as decimal text; the all-time counter wraps to 1 there
-- ARGV[6] attempt token (pyasynq fencing; "" skips the check)
-- Returns 1, or the error replies:
--   LEASE LOST  ARGV[6] is non-empty and the hash's `attempt` is not "<ARGV[6]> <the id's
--               lease score>" (see dequeue.lua); nothing changed
--   NOT FOUND   the id was not in active, or not in lease (earlier removals stay done)
--   INTERNAL    the id was already in completed (active/lease removals stay done)
-- The hash gets msg and state=completed (a `result` field is kept; `attempt` and the
-- crash counter `crashes` are removed: a completed task has nothing left to fence).
-- The lock is deleted only while it still holds this task's id.
-- pyasynq waiters: when the hash has `pyasynq:notify` (see watch_result.lua), PUBLISH
-- "completed:<len(KEYS[4])>:<KEYS[4]><result>" to each channel in it, and drop the field.
local attempt, notify = unpack(redis.call("HMGET", KEYS[4], "attempt", "pyasynq:notify"))
if ARGV[6] ~= ""
    and attempt ~= ARGV[6] .. " " .. (redis.call("ZSCORE", KEYS[2], ARGV[1]) or "-")
    and redis.call("EXISTS", KEYS[4]) == 1 then
    return redis.error_reply("LEASE LOST")
end
if redis.call("LREM", KEYS[1], -1, ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
if redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1]) ~= 1 then
    return redis.error_reply("INTERNAL")
end
redis.call("HSET", KEYS[4], "msg", ARGV[4], "state", "completed")
redis.call("HDEL", KEYS[4], "attempt", "crashes", "pyasynq:notify")
if redis.call("INCR", KEYS[5]) == 1 then
    redis.call("EXPIREAT", KEYS[5], ARGV[2])
end
if redis.call("GET", KEYS[6]) == ARGV[5] then
    redis.call("SET", KEYS[6], 1)
else
    redis.call("INCR", KEYS[6])
end
if KEYS[7] and redis.call("GET", KEYS[7]) == ARGV[1] then
    redis.call("DEL", KEYS[7])
end
if notify then
    local note = "completed:" .. #KEYS[4] .. ":" .. KEYS[4]
        .. (redis.call("HGET", KEYS[4], "result") or "")
    for ch in string.gmatch(notify, "%S+") do
        redis.call("PUBLISH", ch, note)
    end
end
return 1
