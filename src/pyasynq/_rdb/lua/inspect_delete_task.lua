-- inspect_delete_task: delete one task that is not running (wire spec 3.20, DeleteTask).
-- Removes the id from its container, releases the uniqueness lock only when the lock
-- still holds this task's id, and deletes the hash.
-- KEYS[1] task hash asynq:{q}:t:<id>
-- KEYS[2] groups set
-- ARGV[1] task id
-- ARGV[2] queue key prefix asynq:{q}:
-- ARGV[3] group key prefix asynq:{q}:g:
-- Returns 1 deleted; 0 no such task; -1 the task is active; -3 the hash names a state
-- whose container does not hold the id (nothing changed).
if redis.call("EXISTS", KEYS[1]) == 0 then
    return 0
end
local state, group, lock = unpack(redis.call("HMGET", KEYS[1], "state", "group", "unique_key"))
if state == "active" then
    return -1
elseif state == "pending" then
    if redis.call("LREM", ARGV[2] .. "pending", 0, ARGV[1]) == 0 then
        return -3
    end
elseif state == "aggregating" then
    if not group or group == "" then
        return -3
    end
    local gkey = ARGV[3] .. group
    if redis.call("ZREM", gkey, ARGV[1]) == 0 then
        return -3
    end
    if redis.call("ZCARD", gkey) == 0 then
        redis.call("SREM", KEYS[2], group)
    end
else
    if not state or redis.call("ZREM", ARGV[2] .. state, ARGV[1]) == 0 then
        return -3
    end
end
if lock and lock ~= "" and redis.call("GET", lock) == ARGV[1] then
    redis.call("DEL", lock)
end
redis.call("DEL", KEYS[1])
return 1
