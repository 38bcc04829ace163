-- extend_leases: the heartbeat's lease extension, fenced (wire spec 3.13; Go sends
-- ZADD lease XX, which this matches for tasks we still own).
-- KEYS[1] lease zset
-- ARGV[1] new lease expiry, Unix seconds
-- ARGV[2] task key prefix asynq:{q}:t:
-- ARGV[3..] pairs: task id, attempt token ("" = do not check the token)
-- Returns the ids whose lease was extended: still in the lease zset and, when a token is
-- given, still carrying it: `attempt` = "<token> <SHA-1 of msg>" (see dequeue.lua), so a
-- task Go's recoverer took over (msg rewritten) is not extended for the stale worker.
-- A missing id means the lease was lost (recovered elsewhere).
local extended = {}
for i = 3, #ARGV, 2 do
    local id, token = ARGV[i], ARGV[i + 1]
    if redis.call("ZSCORE", KEYS[1], id) then
        local ok = token == ""
        if not ok then
            local fence = redis.call("HMGET", ARGV[2] .. id, "attempt", "msg")
            ok = fence[1] and fence[2] and fence[1] == token .. " " .. redis.sha1hex(fence[2])
        end
        if ok then
            redis.call("ZADD", KEYS[1], "XX", ARGV[1], id)
            extended[#extended + 1] = id
        end
    end
end
return extended
