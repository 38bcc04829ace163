-- done_many: done (wire spec 3.7) for several tasks of one queue in one call (pyasynq only).
-- KEYS[1] active list
-- KEYS[2] lease zset
-- KEYS[3] daily processed counter asynq:{q}:processed:<YYYY-MM-DD>
-- KEYS[4] all-time processed counter
-- KEYS[5] the queue's waiting flag asynq:{q}:pyasynq:waiting (see watch_result.lua)
-- ARGV[1] daily counter expiry, Unix seconds (now + 90 days)
-- ARGV[2] MaxInt64 as decimal text; the all-time counter wraps to 1 there
-- ARGV[3] task key prefix asynq:{q}:t:
-- ARGV[4] n, the number of tasks
-- ARGV[5..4+n] the task ids
-- then runs of attempt tokens covering the n tasks in order: token, how many tasks
--      ("" skips the check; the tasks of one dequeue share a token, so runs are few)
-- then pairs for the tasks that hold a uniqueness lock: position (1..n), lock key
--      (the task's own lock, which carries the queue's hash tag)
-- Returns one element per task, in order: 1, or the text LEASE LOST / NOT FOUND with
-- exactly the meaning of done.lua's error replies (the fence: `attempt` must be
-- "<token> <the id's lease score>", see dequeue.lua). Each task is handled as done.lua
-- handles one, so a refused task changes nothing and does not affect the others.
-- The counters end as done.lua would leave them, but move once per call (INCRBY), unless
-- the all-time counter is near MaxInt64, where it steps one task at a time to wrap as Go.
-- LREM scans active from the tail, where the oldest leases are: done tasks are found
-- there first (an id is in active at most once).
-- pyasynq waiters: while KEYS[5] exists, a task whose hash has `pyasynq:notify` is
-- announced as done.lua does; without it the tasks are not even looked at for that.
local out = {}
local count = tonumber(ARGV[4])
local tokens, locks = {}, {}
local j = 5 + count
while #tokens < count do
    for _ = 1, tonumber(ARGV[j + 1]) do
        tokens[#tokens + 1] = ARGV[j]
    end
    j = j + 2
end
for k = j, #ARGV, 2 do
    locks[tonumber(ARGV[k])] = ARGV[k + 1]
end
local n = 0
local waited = redis.call("EXISTS", KEYS[5]) == 1
for i = 1, count do
    local id, token, lock = ARGV[4 + i], tokens[i], locks[i]
    local key = ARGV[3] .. id
    local result = 1
    local notify, data, attempt = false, false, false
    if waited then -- one read for the waiters' fields and the fence's
        local got = redis.call("HMGET", key, "pyasynq:notify", "result", "attempt")
        notify, data, attempt = got[1], got[1] and got[2], got[3]
    elseif token ~= "" then
        attempt = redis.call("HGET", key, "attempt")
    end
    if token ~= ""
        and attempt ~= token .. " " .. (redis.call("ZSCORE", KEYS[2], id) or "-")
        and redis.call("EXISTS", key) == 1 then
        result = "LEASE LOST"
    elseif redis.call("LREM", KEYS[1], -1, id) == 0 then
        result = "NOT FOUND"
    elseif redis.call("ZREM", KEYS[2], id) == 0 then
        result = "NOT FOUND"
    elseif redis.call("DEL", key) == 0 then
        result = "NOT FOUND"
    else
        n = n + 1
        if lock and redis.call("GET", lock) == id then
            redis.call("DEL", lock)
        end
        if notify then
            local note = "completed:" .. #key .. ":" .. key .. (data or "")
            for ch in string.gmatch(notify, "%S+") do
                redis.call("PUBLISH", ch, note)
            end
        end
    end
    out[#out + 1] = result
end
if n > 0 then
    if redis.call("INCRBY", KEYS[3], n) == n then
        redis.call("EXPIREAT", KEYS[3], ARGV[1])
    end
    local total = redis.call("GET", KEYS[4])
    if not total or #total < 19 then -- below 10^18: n more cannot reach MaxInt64
        redis.call("INCRBY", KEYS[4], n)
    else
        for _ = 1, n do
            if redis.call("GET", KEYS[4]) == ARGV[2] then
                redis.call("SET", KEYS[4], 1)
            else
                redis.call("INCR", KEYS[4])
            end
        end
    end
end
return out
