-- quarantine: take a task that cannot be processed out of circulation (pyasynq only).
-- KEYS[1] task hash
-- KEYS[2] active list
-- KEYS[3] lease zset
-- KEYS[4] pending list
-- KEYS[5] scheduled zset
-- KEYS[6] retry zset
-- KEYS[7] archived zset
-- KEYS[8] completed zset
-- KEYS[9] quarantine hash asynq:{q}:pyasynq:quarantine
-- ARGV[1] task id
-- ARGV[2] reason (short text)
-- ARGV[3] group key prefix asynq:{q}:g:
-- Returns 1 when the id was removed from at least one container (then ARGV[2] is recorded
-- under the id in the quarantine hash), else 0 and nothing changes.
-- The id always leaves active and lease; the container named by the hash's `state` (or its
-- group zset) as well; with no known state (or a task key that is not a hash), every
-- container. The task hash stays as it is,
-- for a human to inspect.
local id = ARGV[1]
local n = redis.call("LREM", KEYS[2], 0, id) + redis.call("ZREM", KEYS[3], id)
-- pcall: a task key that is not a hash has no known state (so: every container).
local f = redis.pcall("HMGET", KEYS[1], "state", "group")
if f.err then
    f = {}
end
local state = f[1]
local zsets = { scheduled = KEYS[5], retry = KEYS[6], archived = KEYS[7], completed = KEYS[8] }
if state == "pending" then
    n = n + redis.call("LREM", KEYS[4], 0, id)
elseif zsets[state] then
    n = n + redis.call("ZREM", zsets[state], id)
elseif state == "aggregating" then
    if f[2] and f[2] ~= "" then
        n = n + redis.call("ZREM", ARGV[3] .. f[2], id)
    end
elseif state ~= "active" then
    n = n + redis.call("LREM", KEYS[4], 0, id)
    for _, k in ipairs({ KEYS[5], KEYS[6], KEYS[7], KEYS[8] }) do
        n = n + redis.call("ZREM", k, id)
    end
end
if n == 0 then
    return 0
end
redis.call("HSET", KEYS[9], id, ARGV[2])
return 1
