-- inspect_memory_usage: approximate bytes used by a queue, by sampling (wire spec 3.20).
-- For each container: MEMORY USAGE of the container key, plus (average MEMORY USAGE of
-- up to ARGV[2] sampled task hashes) x (container size). Aggregating tasks: ids sampled
-- from the first ARGV[3] groups, average x the number of tasks in all groups. Same model
-- as Go asynq; unlike asynq v0.24 it skips ids whose hash is missing instead of failing.
-- KEYS[1] active list       KEYS[5] archived zset
-- KEYS[2] pending list      KEYS[6] completed zset
-- KEYS[3] scheduled zset    KEYS[7] groups set
-- KEYS[4] retry zset
-- ARGV[1] task key prefix  asynq:{q}:t:
-- ARGV[2] task sample size per container (> 0)
-- ARGV[3] number of groups to sample from
-- ARGV[4] group key prefix asynq:{q}:g:
-- Returns the estimate in bytes (integer).
local prefix = ARGV[1]
local sample = tonumber(ARGV[2])
local group_sample = tonumber(ARGV[3])

-- Sum of MEMORY USAGE over the hashes of ids, and how many of them exist.
local function sample_hashes(ids, total, found)
    for _, id in ipairs(ids) do
        local bytes = redis.call("MEMORY", "USAGE", prefix .. id)
        if bytes then
            total = total + bytes
            found = found + 1
        end
    end
    return total, found
end

local usage = 0
for i = 1, 6 do
    local ids, size
    if i <= 2 then
        ids = redis.call("LRANGE", KEYS[i], 0, sample - 1)
        size = redis.call("LLEN", KEYS[i])
    else
        ids = redis.call("ZRANGE", KEYS[i], 0, sample - 1)
        size = redis.call("ZCARD", KEYS[i])
    end
    local total, found = sample_hashes(ids, 0, 0)
    if found > 0 then
        usage = usage + (total / found) * size
    end
    local own = redis.call("MEMORY", "USAGE", KEYS[i])
    if own then
        usage = usage + own
    end
end

local groups = redis.call("SMEMBERS", KEYS[7])
local count, total, found = 0, 0, 0
for i, gname in ipairs(groups) do
    local gkey = ARGV[4] .. gname
    count = count + redis.call("ZCARD", gkey)
    if i <= group_sample then
        total, found = sample_hashes(redis.call("ZRANGE", gkey, 0, sample - 1), total, found)
    end
end
if found > 0 then
    usage = usage + (total / found) * count
end
return math.floor(usage)
