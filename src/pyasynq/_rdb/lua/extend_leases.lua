-- extend_leases: the heartbeat's lease extension, fenced (wire spec 3.13; Go sends
-- ZADD lease XX, which this matches for tasks we still own).
-- KEYS[1] lease zset
-- ARGV[1] new lease expiry, Unix seconds
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3..] pairs: task id, attempt token ("" = do not check the token)
-- Returns the ids whose lease was extended: still in the lease zset and, when a token is
-- given, still carrying it. A missing id means the lease was lost (recovered elsewhere).
local extended = {}
for i = 3, #ARGV, 2 do
    local id, token = ARGV[i], ARGV[i + 1]
    if redis.call("ZSCORE", KEYS[1], id) then
        local ok = token == ""
        if not ok then
            ok = redis.call("HGET", ARGV[2] .. id, "attempt") == token
        end
        if ok then
            redis.call("ZADD", KEYS[1], "XX", ARGV[1], id)
            extended[#extended + 1] = id
        end
    end
end
return extended
