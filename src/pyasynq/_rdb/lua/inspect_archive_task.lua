-- inspect_archive_task: archive one task by hand (wire spec 3.20, ArchiveTask).
-- Valid from pending, scheduled, retry, completed and aggregating. Then the archive is
-- trimmed like Go's Inspector does: entries archived at or before the cutoff, and the
-- lowest ranks beyond the size limit, leave the zset; their hashes are NOT deleted (Go
-- asynq's behaviour; only the processor's archive deletes them). A pending task keeps its
-- stale pending_since field, as in Go.
-- KEYS[1] task hash asynq:{q}:t:<id>
-- KEYS[2] archived zset
-- KEYS[3] groups set
-- ARGV[1] task id
-- ARGV[2] now, Unix seconds (the archived score)
-- ARGV[3] cutoff, Unix seconds (now - 90 days)
-- ARGV[4] archive size limit (10000; at most limit - 1 entries stay)
-- ARGV[5] queue key prefix asynq:{q}:
-- ARGV[6] group key prefix asynq:{q}:g:
-- Returns 1 archived; 0 no such task; -1 already archived; -2 the task is active; -3 the
-- hash names a state whose container does not hold the id (nothing changed).
if redis.call("EXISTS", KEYS[1]) == 0 then
    return 0
end
local state, group = unpack(redis.call("HMGET", KEYS[1], "state", "group"))
if state == "active" then
    return -2
elseif state == "archived" then
    return -1
elseif state == "pending" then
    if redis.call("LREM", ARGV[5] .. "pending", 1, ARGV[1]) == 0 then
        return -3
    end
elseif state == "aggregating" then
    if not group or group == "" then
        return -3
    end
    local gkey = ARGV[6] .. group
    if redis.call("ZREM", gkey, ARGV[1]) == 0 then
        return -3
    end
    if redis.call("ZCARD", gkey) == 0 then
        redis.call("SREM", KEYS[3], group)
    end
else
    if not state or redis.call("ZREM", ARGV[5] .. state, ARGV[1]) == 0 then
        return -3
    end
end
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[1])
redis.call("HSET", KEYS[1], "state", "archived")
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", ARGV[3])
redis.call("ZREMRANGEBYRANK", KEYS[2], 0, -tonumber(ARGV[4]))
return 1
