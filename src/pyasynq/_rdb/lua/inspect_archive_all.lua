-- inspect_archive_all: one batch of ArchiveAll{Scheduled,Retry,Aggregating} (wire spec
-- 3.20). Moves up to ARGV[5] ids with the lowest scores to the archive (score = now,
-- state=archived), then trims the archive as Go's Inspector does (entries at or before the
-- cutoff and ranks beyond the size limit leave the zset; their hashes are NOT deleted).
-- Trimming after every batch keeps exactly the entries one trim at the end would keep,
-- provided every batch gets the same now. The caller repeats until a batch comes back
-- short. An emptied group leaves the groups set. Ids whose hash is missing are dropped
-- from the source without being archived.
-- KEYS[1] source zset: scheduled, retry or a group asynq:{q}:g:<group>
-- KEYS[2] archived zset
-- KEYS[3] groups set
-- ARGV[1] now, Unix seconds
-- ARGV[2] cutoff, Unix seconds (now - 90 days)
-- ARGV[3] archive size limit (10000)
-- ARGV[4] task key prefix asynq:{q}:t:
-- ARGV[5] batch size (> 0)
-- ARGV[6] group name when KEYS[1] is a group, else ""
-- Returns how many ids this batch took off the source (< ARGV[5] means done).
local ids = redis.call("ZRANGE", KEYS[1], 0, tonumber(ARGV[5]) - 1)
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
redis.call("ZREMRANGEBYRANK", KEYS[1], 0, #ids - 1)
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", ARGV[2])
redis.call("ZREMRANGEBYRANK", KEYS[2], 0, -tonumber(ARGV[3]))
if ARGV[6] ~= "" and redis.call("EXISTS", KEYS[1]) == 0 then
    redis.call("SREM", KEYS[3], ARGV[6])
end
return #ids
