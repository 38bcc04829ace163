-- aggregation_check: start an aggregation set when a group is ready (wire spec 3.15).
-- KEYS[1] group zset asynq:{q}:g:<group>
-- KEYS[2] new aggregation set zset asynq:{q}:g:<group>:<set id>
-- KEYS[3] aggregation_sets zset
-- KEYS[4] groups set
-- ARGV[1] max size (0 = no limit)
-- ARGV[2] max delay, seconds (0 = no limit)
-- ARGV[3] grace period, seconds
-- ARGV[4] set deadline, Unix seconds (now + 2 min)
-- ARGV[5] now, Unix seconds
-- ARGV[6] group name
-- Returns 1 when the set KEYS[2] was created, else 0 (group empty or not ready).
-- Ready, checked in this order: size >= max size; oldest score <= now - max delay; newest
-- score <= now - grace. Then the oldest max-size members (all when 0) move with their
-- scores from the group to the set, the set is registered in aggregation_sets with the
-- deadline, and the group name leaves the groups set if the group is now empty.
local size = redis.call("ZCARD", KEYS[1])
if size == 0 then
    return 0
end
local max_size = tonumber(ARGV[1])
local max_delay = tonumber(ARGV[2])
local now = tonumber(ARGV[5])
local ready = max_size ~= 0 and size >= max_size
if not ready and max_delay ~= 0 then
    local oldest = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
    ready = tonumber(oldest[2]) <= now - max_delay
end
if not ready then
    local newest = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
    ready = tonumber(newest[2]) <= now - tonumber(ARGV[3])
end
if not ready then
    return 0
end
local last = -1
if max_size ~= 0 then
    last = max_size - 1
end
local members = redis.call("ZRANGE", KEYS[1], 0, last, "WITHSCORES")
for i = 1, #members, 2 do
    redis.call("ZADD", KEYS[2], members[i + 1], members[i])
    redis.call("ZREM", KEYS[1], members[i])
end
redis.call("ZADD", KEYS[3], ARGV[4], KEYS[2])
if redis.call("ZCARD", KEYS[1]) == 0 then
    redis.call("SREM", KEYS[4], ARGV[6])
end
return 1
