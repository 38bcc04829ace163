-- inspect_task_info: one task as the Inspector shows it (wire spec 3.20, GetTaskInfo).
-- KEYS[1] task hash asynq:{q}:t:<id>
-- KEYS[2] lease zset
-- ARGV[1] task id
-- ARGV[2] now, Unix seconds
-- ARGV[3] queue key prefix asynq:{q}:
-- Returns nil when the hash does not exist (or has no msg field: a stub left by a late
-- result write), else {msg, state, next_process_at, result,
-- orphaned, progress}: next_process_at is the task's score in the scheduled/retry zset, now for a
-- pending task and 0 otherwise; result is nil when never written; orphaned is 1 for an
-- active task whose lease expired at or before now, else 0; progress is the pyasynq field
-- `pyasynq:progress` (nil when no handler reported any).
local msg, state, result, progress =
    unpack(redis.call("HMGET", KEYS[1], "msg", "state", "result", "pyasynq:progress"))
if not msg then
    return nil
end
local next_at = 0
local orphaned = 0
if state == "scheduled" or state == "retry" then
    next_at = redis.call("ZSCORE", ARGV[3] .. state, ARGV[1]) or 0
elseif state == "pending" then
    next_at = ARGV[2]
elseif state == "active" then
    local lease = redis.call("ZSCORE", KEYS[2], ARGV[1])
    if lease and tonumber(lease) <= tonumber(ARGV[2]) then
        orphaned = 1
    end
end
return {msg, state, next_at, result, orphaned, progress}
