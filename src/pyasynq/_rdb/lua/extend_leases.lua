-- extend_leases: the heartbeat's lease extension, fenced (wire spec 3.13; Go sends
-- ZADD lease XX, which this matches for tasks we still own).
-- KEYS[1] lease zset
-- ARGV[1] new lease expiry, integer Unix seconds
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3..] pairs: task id, attempt token ("" = do not check the token)
-- Returns the ids whose lease was extended: still in the lease zset and, when a token is
-- given, still fenced by it (`attempt` = "<token> <current lease score>", see dequeue.lua);
-- their `attempt` then records the new expiry. A missing id means the lease was lost
-- (recovered elsewhere, possibly by Go and leased again by a Go worker).
local extended = {}
for i = 3, #ARGV, 2 do
    local id, token = ARGV[i], ARGV[i + 1]
    local score = redis.call("ZSCORE", KEYS[1], id)
    if score then
        local key = ARGV[2] .. id
        local ok = token == ""
        if not ok then
            ok = redis.call("HGET", key, "attempt") == token .. " " .. score
        end
        if ok then
            redis.call("ZADD", KEYS[1], "XX", ARGV[1], id)
            if token ~= "" then
                redis.call("HSET", key, "attempt", token .. " " .. ARGV[1])
            end
            extended[#extended + 1] = id
        end
    end
end
return extended
