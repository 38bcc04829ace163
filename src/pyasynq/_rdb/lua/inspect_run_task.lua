-- inspect_run_task: move one task to pending so it runs next (wire spec 3.20, RunTask).
-- Valid from scheduled, retry, archived, completed and aggregating. pending_since is not
-- set (as in Go asynq), so a run task does not count for queue latency.
-- KEYS[1] task hash asynq:{q}:t:<id>
-- KEYS[2] pending list
-- KEYS[3] groups set
-- ARGV[1] task id
-- ARGV[2] queue key prefix asynq:{q}:
-- ARGV[3] group key prefix asynq:{q}:g:
-- Returns 1 moved to pending; 0 no such task; -1 the task is active; -2 it is already
-- pending; -3 the hash names a state whose container does not hold the id (nothing
-- changed).
if redis.call("EXISTS", KEYS[1]) == 0 then
    return 0
end
local state, group = unpack(redis.call("HMGET", KEYS[1], "state", "group"))
if state == "active" then
    return -1
elseif state == "pending" then
    return -2
elseif state == "aggregating" then
    if not group or group == "" then
        return -3
    end
    local gkey = ARGV[3] .. group
    if redis.call("ZREM", gkey, ARGV[1]) == 0 then
        return -3
    end
    if redis.call("ZCARD", gkey) == 0 then
        redis.call("SREM", KEYS[3], group)
    end
else
    if not state or redis.call("ZREM", ARGV[2] .. state, ARGV[1]) == 0 then
        return -3
    end
end
redis.call("LPUSH", KEYS[2], ARGV[1])
redis.call("HSET", KEYS[1], "state", "pending")
return 1
