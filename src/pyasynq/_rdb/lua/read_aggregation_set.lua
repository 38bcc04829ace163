-- read_aggregation_set: the tasks of an aggregation set and its deadline (wire spec 3.15).
-- KEYS[1] aggregation set zset asynq:{q}:g:<group>:<set id>
-- KEYS[2] aggregation_sets zset
-- ARGV[1] task key prefix asynq:{q}:t:
-- Returns [deadline, [msg1, msg2, ...]]: deadline is the set's score in aggregation_sets
-- (Unix seconds) or nil when the set is not registered (e.g. already reclaimed); the msgs
-- are the members' encoded TaskMessages in score order, members without a hash skipped.
local msgs = {}
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
    local msg = redis.call("HGET", ARGV[1] .. id, "msg")
    if msg then
        msgs[#msgs + 1] = msg
    end
end
local deadline = redis.call("ZSCORE", KEYS[2], KEYS[1])
if deadline then
    deadline = tonumber(deadline)
else
    deadline = false -- a nil would end the reply array early
end
return { deadline, msgs }
