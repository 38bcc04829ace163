-- reclaim_stale_aggregation_sets: give the members of expired sets back to their group
-- (wire spec 3.15, run by the recoverer).
-- KEYS[1] aggregation_sets zset (member = set key, score = deadline)
-- KEYS[2] groups set
-- ARGV[1] now, Unix seconds: sets with deadline <= now are stale
-- ARGV[2] group key prefix asynq:{q}:g:
-- Returns how many sets were reclaimed.
-- Each member goes back to the group zset (the set key without its last ":<set id>") with
-- its original score; the set is deleted and leaves aggregation_sets. Go does not re-add
-- the group to the groups set, so the aggregator would never look at it again; pyasynq
-- SADDs the group name back when members were returned.
local sets = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])
for _, set in ipairs(sets) do
    local gkey = string.match(set, "^(.*):[^:]*$")
    local members = redis.call("ZRANGE", set, 0, -1, "WITHSCORES")
    if gkey then
        for i = 1, #members, 2 do
            redis.call("ZADD", gkey, members[i + 1], members[i])
        end
        local prefix = ARGV[2]
        if #members > 0 and string.sub(gkey, 1, #prefix) == prefix then
            redis.call("SADD", KEYS[2], string.sub(gkey, #prefix + 1))
        end
    end
    redis.call("DEL", set)
end
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])
return #sets
