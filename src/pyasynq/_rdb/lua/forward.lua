-- forward: move due scheduled or retry tasks to pending, or to their group (wire spec 3.12).
-- KEYS[1] source zset (scheduled or retry)
-- KEYS[2] pending list
-- KEYS[3] quarantine hash asynq:{q}:pyasynq:quarantine (pyasynq only)
-- ARGV[1] now, Unix seconds: ids scored <= now are due
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3] now, Unix nanoseconds (pending_since)
-- ARGV[4] group key prefix asynq:{q}:g:
-- Returns how many ids were taken off the source (at most 100); the caller repeats until 0.
-- A task whose hash has a non-empty `group` goes to zset <prefix><group> (score = now) with
-- state=aggregating; like Go this does not SADD the groups set. Any other task is LPUSHed
-- onto pending with state=pending and pending_since. pyasynq also deletes `attempt`, and an
-- id without a task hash (or `msg`) is dropped into the quarantine hash instead of being
-- turned into a hash with no msg.
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, 100)
for _, id in ipairs(ids) do
    local key = ARGV[2] .. id
    local f = redis.call("HMGET", key, "msg", "group")
    redis.call("ZREM", KEYS[1], id)
    if not f[1] then
        if redis.call("EXISTS", key) == 1 then
            redis.call("HSET", KEYS[3], id, "no msg field")
        else
            redis.call("HSET", KEYS[3], id, "no task hash")
        end
    elseif f[2] and f[2] ~= "" then
        redis.call("ZADD", ARGV[4] .. f[2], ARGV[1], id)
        redis.call("HSET", key, "state", "aggregating")
        redis.call("HDEL", key, "attempt")
    else
        redis.call("LPUSH", KEYS[2], id)
        redis.call("HSET", key, "state", "pending", "pending_since", ARGV[3])
        redis.call("HDEL", key, "attempt")
    end
end
return #ids
