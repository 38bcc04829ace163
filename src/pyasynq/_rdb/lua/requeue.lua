-- requeue: put an active task back as the next to run, on shutdown (wire spec 3.9).
-- KEYS[1] active list
-- KEYS[2] lease zset
-- KEYS[3] pending list
-- KEYS[4] task hash
-- ARGV[1] task id
-- ARGV[2] attempt token (pyasynq fencing; "" skips the check)
-- Returns 1, or the error replies:
--   LEASE LOST  ARGV[2] is non-empty and the hash's `attempt` is not "<ARGV[2]> <the id's
--               lease score>" (see dequeue.lua); nothing changed
--   NOT FOUND   the id was not in active, or not in lease (earlier removals stay done)
-- The id is RPUSHed onto the tail of pending, which is the next to be popped. The hash gets
-- state=pending with msg unchanged and no pending_since, as in Go; no counters change.
local attempt = redis.call("HGET", KEYS[4], "attempt")
if ARGV[2] ~= ""
    and attempt ~= ARGV[2] .. " " .. (redis.call("ZSCORE", KEYS[2], ARGV[1]) or "-")
    and redis.call("EXISTS", KEYS[4]) == 1 then
    return redis.error_reply("LEASE LOST")
end
if redis.call("LREM", KEYS[1], -1, ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
    return redis.error_reply("NOT FOUND")
end
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending")
redis.call("HDEL", KEYS[4], "attempt")
return 1
