-- inspect_delete_queue: delete a queue's tasks, all or nothing (wire spec 3.20, DeleteQueue).
--
-- Go asynq deletes every task hash inside this one script, which blocks Redis for as long
-- as that takes on a huge queue. Here the script only checks and detaches: with force it
-- RENAMEs the non-empty pending/scheduled/retry/archived containers (O(1) each) to trash
-- keys asynq:{q}:pyasynq:deleted:<token>:<name>, recorded in the SET
-- asynq:{q}:pyasynq:deleted. Readers see all the queue's tasks vanish at once, exactly as
-- after Go's script; the unreferenced hashes are then deleted in bounded batches by
-- inspect_purge_deleted. A task id stays taken until its old hash is purged (enqueueing
-- that id meanwhile gets an id conflict), and a purge cut short by a crash is finished by
-- the next purge of the queue, because the SET remembers the trash keys.
-- Like Go, completed tasks, groups, the paused flag, counters and uniqueness locks stay.
-- The caller SREMs the queue from asynq:queues afterwards (another slot).
-- KEYS[1] pending list       KEYS[5] archived zset
-- KEYS[2] active list        KEYS[6] lease zset
-- KEYS[3] scheduled zset     KEYS[7] trash registry set asynq:{q}:pyasynq:deleted
-- KEYS[4] retry zset
-- ARGV[1] 1 = force, 0 = only delete an empty queue
-- ARGV[2] trash key prefix for this call, asynq:{q}:pyasynq:deleted:<token>:
-- Returns 1 deleted; -1 not force and pending/active/scheduled/retry/archived are not all
-- empty; -2 force but tasks are active (nothing changed in either error case).
if ARGV[1] ~= "1" then
    for i = 1, 5 do
        if redis.call("EXISTS", KEYS[i]) == 1 then
            return -1
        end
    end
    redis.call("DEL", KEYS[6])
    return 1
end
if redis.call("LLEN", KEYS[2]) > 0 then
    return -2
end
local names = {[1] = "pending", [3] = "scheduled", [4] = "retry", [5] = "archived"}
for _, i in ipairs({1, 3, 4, 5}) do
    if redis.call("EXISTS", KEYS[i]) == 1 then
        local trash = ARGV[2] .. names[i]
        redis.call("RENAME", KEYS[i], trash)
        redis.call("SADD", KEYS[7], trash)
    end
end
redis.call("DEL", KEYS[2], KEYS[6])
return 1
