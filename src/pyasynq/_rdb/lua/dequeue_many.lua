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
-- ARGV[5] the most dangling ids to skip in this call (>= 1)
-- Returns a flat array [id1, msg1, since1, id2, msg2, since2, ..., skipped] (msg = encoded
-- TaskMessage, since = its pending_since in ns, "" when none), oldest first, then how many
-- dangling ids were skipped; just [0] when the queue is paused or empty.
-- Each task is moved exactly as dequeue.lua moves one (`attempt` = "<token> <ARGV[1]>"),
-- and completely before the next is touched, so a script stopped half-way never leaves a
-- task outside both lists or an
-- active task without a lease. Ids without a task hash (or without `msg`, or whose key is
-- not a hash) are taken back
-- off active and recorded in the quarantine hash, as dequeue.lua does.
-- Runs when Redis is full (flags=allow-oom, see scripts.py).
local out = {}
if redis.call("EXISTS", KEYS[2]) == 1 then
    return { 0 }
end
local want, most = tonumber(ARGV[4]), tonumber(ARGV[5])
local fence = ARGV[3] .. " " .. ARGV[1]
local skipped = 0
while #out < 3 * want and skipped < most do
    local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
    if not id then
        break
    end
    local key = ARGV[2] .. id
    -- pcall: a task key of another type (a string, say) is quarantined, not an error
    -- that would leave the id in active with no lease and stop every dequeue behind it.
    -- One HMGET for both fields (a missing field or key reads as false).
    local got = redis.pcall("HMGET", key, "msg", "pending_since")
    local bad = got.err
    local msg = not bad and got[1]
    if msg then
        local since = got[2] or ""
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
        out[#out + 1] = since
    else
        redis.call("LPOP", KEYS[3]) -- the id just pushed onto active's head
        skipped = skipped + 1
        if bad then
            redis.call("HSET", KEYS[5], id, "task key holds a " .. redis.call("TYPE", key).ok
                .. ", not a hash")
        elseif redis.call("EXISTS", key) == 1 then
            redis.call("HSET", KEYS[5], id, "no msg field")
        else
            redis.call("HSET", KEYS[5], id, "no task hash")
        end
    end
end
out[#out + 1] = skipped
return out
