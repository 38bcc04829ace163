-- inspect_archive_all_pending: one batch of ArchiveAllPendingTasks (wire spec 3.20).
-- Takes up to ARGV[5] ids from the tail of pending (oldest first) and archives them
-- (score = now, state=archived; the stale pending_since stays, as in Go), then trims the
-- archive like inspect_archive_all (hashes of trimmed entries are NOT deleted). The caller
-- repeats until a batch comes back short. Ids whose hash is missing are dropped.
-- KEYS[1] pending list
-- KEYS[2] archived zset
-- ARGV[1] now, Unix seconds
-- ARGV[2] cutoff, Unix seconds (now - 90 days)
-- ARGV[3] archive size limit (10000)
-- ARGV[4] task key prefix asynq:{q}:t:
-- ARGV[5] batch size (> 0)
-- Returns how many ids this batch took off pending (< ARGV[5] means done).
local batch = tonumber(ARGV[5])
local ids = redis.call("LRANGE", KEYS[1], -batch, -1)
if #ids == 0 then
    return 0
end
for _, id in ipairs(ids) do
    local tkey = ARGV[4] .. id
    if redis.call("TYPE", tkey).ok == "hash" then -- HSET would fail on another type
        redis.call("ZADD", KEYS[2], ARGV[1], id)
        redis.call("HSET", tkey, "state", "archived")
    end
end
redis.call("LTRIM", KEYS[1], 0, -(#ids + 1))
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", ARGV[2])
redis.call("ZREMRANGEBYRANK", KEYS[2], 0, -tonumber(ARGV[3]))
return #ids
