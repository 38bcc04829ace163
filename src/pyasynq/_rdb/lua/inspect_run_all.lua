-- inspect_run_all: one batch of RunAll{Scheduled,Retry,Archived,Aggregating} (wire spec
-- 3.20). Moves up to ARGV[2] ids with the lowest scores to pending, each LPUSHed in
-- ascending score order (the lowest score runs first) with state=pending and no
-- pending_since, as Go asynq does. The caller repeats until a batch comes back short, so
-- Redis is never blocked for long and memory stays flat however many tasks there are; the
-- end state equals Go's single script (the source zset is gone, an emptied group leaves
-- the groups set). Ids whose hash is missing are dropped from the source without being
-- queued (Go would create a hash holding only a state).
-- KEYS[1] source zset: scheduled, retry, archived or a group asynq:{q}:g:<group>
-- KEYS[2] pending list
-- KEYS[3] groups set
-- ARGV[1] task key prefix asynq:{q}:t:
-- ARGV[2] batch size (> 0)
-- ARGV[3] group name when KEYS[1] is a group, else ""
-- Returns how many ids this batch took off the source (Go's count; < ARGV[2] means done).
local ids = redis.call("ZRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #ids == 0 then
    return 0
end
for _, id in ipairs(ids) do
    local tkey = ARGV[1] .. id
    if redis.call("TYPE", tkey).ok == "hash" then -- HSET would fail on another type
        redis.call("LPUSH", KEYS[2], id)
        redis.call("HSET", tkey, "state", "pending")
    end
end
redis.call("ZREMRANGEBYRANK", KEYS[1], 0, #ids - 1)
if ARGV[3] ~= "" and redis.call("EXISTS", KEYS[1]) == 0 then
    redis.call("SREM", KEYS[3], ARGV[3])
end
return #ids
