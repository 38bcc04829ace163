-- dequeue_many: dequeue (wire spec 3.6) up to N tasks of one queue in one call (pyasynq only).
-- KEYS[1] pending list
-- KEYS[2] paused flag (string)
-- KEYS[3] active list
-- KEYS[4] lease zset
-- KEYS[5] quarantine hash asynq:{q}:pyasynq:quarantine
-- ARGV[1] lease expiry, integer Unix seconds (now + 30 s)
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3] attempt token shared by the tasks of this call ("" = none)
-- ARGV[4] N, the most tasks to take (>= 1)
-- Returns a flat array [id1, msg1, id2, msg2, ...] (msg = encoded TaskMessage), oldest
-- first; empty when the queue is paused or empty.
-- Each task is moved exactly as dequeue.lua moves one (`attempt` = "<token> <ARGV[1]>"),
-- and completely before the next is touched, so a script stopped half-way never leaves a
-- task outside both lists or an active task without a lease. Ids without a task hash (or
-- without `msg`) are taken back out of active and recorded in the quarantine hash; at most
-- 10 per call.
local out = {}
if redis.call("EXISTS", KEYS[2]) == 1 then
    return out
end
local want = tonumber(ARGV[4])
local fence = ARGV[3] .. " " .. ARGV[1]
local skipped = 0
while #out < 2 * want and skipped < 10 do
    local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
    if not id then
        break
    end
    local key = ARGV[2] .. id
    local msg = redis.call("HGET", key, "msg")
    if msg then
        if ARGV[3] ~= "" then
            redis.call("HSET", key, "state", "active", "attempt", fence)
            redis.call("HDEL", key, "pending_since")
        else
            redis.call("HSET", key, "state", "active")
            redis.call("HDEL", key, "pending_since", "attempt")
        end
        redis.call("ZADD", KEYS[4], ARGV[1], id)
        out[#out + 1] = id
        out[#out + 1] = msg
    else
        skipped = skipped + 1
        redis.call("LREM", KEYS[3], 1, id) -- just pushed: found at the head
        if redis.call("EXISTS", key) == 1 then
            redis.call("HSET", KEYS[5], id, "no msg field")
        else
            redis.call("HSET", KEYS[5], id, "no task hash")
        end
    end
end
return out
