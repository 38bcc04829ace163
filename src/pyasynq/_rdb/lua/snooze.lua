-- snooze: the handler asked to run the task again later; not a retry, not a failure (pyasynq).
-- KEYS[1] task hash
-- KEYS[2] active list
-- KEYS[3] lease zset
-- KEYS[4] scheduled zset
-- ARGV[1] task id
-- ARGV[2] run-at, Unix seconds
-- ARGV[3] attempt token (pyasynq fencing; "" skips the check)
-- Returns 1, or the error replies:
--   LEASE LOST  ARGV[3] is non-empty and the hash's `attempt` is not "<ARGV[3]> <the id's
--               lease score>" (see dequeue.lua); nothing changed
--   NOT FOUND   the id was not in active, or not in lease (earlier removals stay done)
-- The task becomes a scheduled task as an enqueue with process_at would leave it: in the
-- scheduled zset at ARGV[2], state=scheduled, msg unchanged (retried, error_msg and
-- last_failed_at untouched), so a Go forwarder moves it back to pending like any other.
-- The hash loses `attempt` and its field `snoozed` (pyasynq's count) goes up by 1. No
-- counter changes; the uniqueness lock is kept.
local attempt = redis.call("HGET", KEYS[1], "attempt")
if ARGV[3] ~= ""
    and attempt ~= ARGV[3] .. " " .. (redis.call("ZSCORE", KEYS[3], ARGV[1]) or "-")
    and redis.call("EXISTS", KEYS[1]) == 1 then
    return redis.error_reply("LEASE LOST")
end
if redis.call("LREM", KEYS[2], -1, ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
if redis.call("ZREM", KEYS[3], ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
redis.call("ZADD", KEYS[4], ARGV[2], ARGV[1])
redis.call("HSET", KEYS[1], "state", "scheduled")
redis.call("HDEL", KEYS[1], "attempt")
redis.call("HINCRBY", KEYS[1], "snoozed", 1)
return 1
