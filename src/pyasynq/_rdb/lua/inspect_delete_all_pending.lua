-- inspect_delete_all_pending: one batch of DeleteAllPendingTasks (wire spec 3.20).
-- Deletes the hashes of up to ARGV[2] ids from the tail of pending and trims them off the
-- list. Uniqueness locks are not released (Go asynq's behaviour; they expire by TTL).
-- The caller repeats until a batch comes back short.
-- KEYS[1] pending list
-- ARGV[1] task key prefix asynq:{q}:t:
-- ARGV[2] batch size (> 0)
-- Returns how many ids this batch took off pending (< ARGV[2] means done).
local ids = redis.call("LRANGE", KEYS[1], -tonumber(ARGV[2]), -1)
if #ids == 0 then
    return 0
end
for _, id in ipairs(ids) do
    redis.call("DEL", ARGV[1] .. id)
end
redis.call("LTRIM", KEYS[1], 0, -(#ids + 1))
return #ids
