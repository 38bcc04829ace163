-- report_progress: store a running task's progress and tell its waiters (pyasynq).
-- KEYS[1] task hash asynq:{q}:t:<id>
-- KEYS[2] lease zset
-- ARGV[1] task id
-- ARGV[2] attempt token (never empty: only the worker holding the lease reports)
-- ARGV[3] progress as JSON {"fraction": f, "message": m, "at": Unix s}
-- Returns 1, or the error reply LEASE LOST when the hash's `attempt` is not
-- "<ARGV[2]> <the id's lease score>" (see dequeue.lua): the task was taken over, finished,
-- or deleted; nothing changed (a hash is never created).
-- Stores ARGV[3] in the hash field `pyasynq:progress` (Go ignores it) and PUBLISHes
-- "progress:<len(KEYS[1])>:<KEYS[1]><ARGV[3]>" to each channel in `pyasynq:notify`.
local attempt, notify = unpack(redis.call("HMGET", KEYS[1], "attempt", "pyasynq:notify"))
if attempt ~= ARGV[2] .. " " .. (redis.call("ZSCORE", KEYS[2], ARGV[1]) or "-") then
    return redis.error_reply("LEASE LOST")
end
redis.call("HSET", KEYS[1], "pyasynq:progress", ARGV[3])
if notify then
    local note = "progress:" .. #KEYS[1] .. ":" .. KEYS[1] .. ARGV[3]
    for ch in string.gmatch(notify, "%S+") do
        redis.call("PUBLISH", ch, note)
    end
end
return 1
