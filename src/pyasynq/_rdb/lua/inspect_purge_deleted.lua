-- inspect_purge_deleted: one batch of the cleanup after inspect_delete_queue (force).
-- Takes up to ARGV[2] ids from the trash containers listed in the registry SET, deletes
-- their task hashes, and forgets each trash container once it is empty. The caller
-- repeats until a batch comes back short. No uniqueness lock is released (as in Go).
-- KEYS[1] trash registry set asynq:{q}:pyasynq:deleted
--         (members: asynq:{q}:pyasynq:deleted:<token>:<name>)
-- ARGV[1] task key prefix asynq:{q}:t:
-- ARGV[2] batch size (> 0)
-- Returns how many ids this batch took (< ARGV[2] means nothing is left).
local batch = tonumber(ARGV[2])
local budget = batch
for _, trash in ipairs(redis.call("SMEMBERS", KEYS[1])) do
    if budget == 0 then
        break
    end
    local kind = redis.call("TYPE", trash)["ok"]
    local ids = {}
    if kind == "list" then
        ids = redis.call("LRANGE", trash, 0, budget - 1)
        redis.call("LTRIM", trash, #ids, -1)
    elseif kind == "zset" then
        ids = redis.call("ZRANGE", trash, 0, budget - 1)
        if #ids > 0 then
            redis.call("ZREMRANGEBYRANK", trash, 0, #ids - 1)
        end
    end
    for _, id in ipairs(ids) do
        redis.call("DEL", ARGV[1] .. id)
    end
    budget = budget - #ids
    -- Emptied (or never a container at all): nothing more to purge from this key.
    if (kind ~= "list" and kind ~= "zset") or redis.call("EXISTS", trash) == 0 then
        redis.call("SREM", KEYS[1], trash)
    end
end
return batch - budget
