-- inspect_delete_all: one batch of DeleteAll{Scheduled,Retry,Archived,Completed,
-- Aggregating} (wire spec 3.20). Deletes the hashes of up to ARGV[2] ids with the lowest
-- scores and removes them from the source. With ARGV[3] = 1 (every state but aggregating,
-- as in Go) a task's uniqueness lock is released when it still holds the task's id. An
-- emptied group leaves the groups set. The caller repeats until a batch comes back short.
-- KEYS[1] source zset: scheduled, retry, archived, completed or a group asynq:{q}:g:<group>
-- KEYS[2] groups set
-- ARGV[1] task key prefix asynq:{q}:t:
-- ARGV[2] batch size (> 0)
-- ARGV[3] 1 to release owned uniqueness locks, else 0
-- ARGV[4] group name when KEYS[1] is a group, else ""
-- Returns how many ids this batch took off the source (< ARGV[2] means done).
local ids = redis.call("ZRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #ids == 0 then
    return 0
end
local release = ARGV[3] == "1"
for _, id in ipairs(ids) do
    local tkey = ARGV[1] .. id
    if release then
        local lock = redis.call("HGET", tkey, "unique_key")
        if lock and lock ~= "" and redis.call("GET", lock) == id then
            redis.call("DEL", lock)
        end
    end
    redis.call("DEL", tkey)
end
redis.call("ZREMRANGEBYRANK", KEYS[1], 0, #ids - 1)
if ARGV[4] ~= "" and redis.call("EXISTS", KEYS[1]) == 0 then
    redis.call("SREM", KEYS[2], ARGV[4])
end
return #ids
