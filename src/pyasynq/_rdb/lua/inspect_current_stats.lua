-- inspect_current_stats: one consistent snapshot of a queue's counters (wire spec 3.20, Stats).
-- KEYS[1]  pending list              KEYS[7]  processed:<today>
-- KEYS[2]  active list               KEYS[8]  failed:<today>
-- KEYS[3]  scheduled zset            KEYS[9]  processed (all-time)
-- KEYS[4]  retry zset                KEYS[10] failed (all-time)
-- KEYS[5]  archived zset             KEYS[11] paused string
-- KEYS[6]  completed zset            KEYS[12] groups set
-- ARGV[1] task key prefix  asynq:{q}:t:
-- ARGV[2] group key prefix asynq:{q}:g:
-- Returns a 14-element array:
--   [1..6]  sizes of pending, active, scheduled, retry, archived, completed (integers)
--   [7..10] processed today, failed today, processed total, failed total: the stored
--           decimal strings, nil when missing (strings, because a Lua number would lose
--           precision above 2^53)
--   [11]    1 when the queue is paused, else 0
--   [12]    pending_since (ns, decimal string) of the oldest pending task, the list's tail;
--           nil when pending is empty or the field is absent (requeued / run tasks)
--   [13]    number of groups
--   [14]    aggregating tasks: the sum of the group zset sizes
local res = {}
res[1] = redis.call("LLEN", KEYS[1])
res[2] = redis.call("LLEN", KEYS[2])
for i = 3, 6 do
    res[i] = redis.call("ZCARD", KEYS[i])
end
for i = 7, 10 do
    res[i] = redis.call("GET", KEYS[i])
end
res[11] = redis.call("EXISTS", KEYS[11])
res[12] = false
if res[1] > 0 then
    local tail = redis.call("LINDEX", KEYS[1], -1)
    if tail then
        res[12] = redis.call("HGET", ARGV[1] .. tail, "pending_since")
    end
end
local groups = redis.call("SMEMBERS", KEYS[12])
local aggregating = 0
for _, gname in ipairs(groups) do
    aggregating = aggregating + redis.call("ZCARD", ARGV[2] .. gname)
end
res[13] = #groups
res[14] = aggregating
return res
