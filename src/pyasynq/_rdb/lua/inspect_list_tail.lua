-- inspect_list_tail: one page of the pending or active list, oldest first (wire spec 3.20).
-- New ids are LPUSHed, so the oldest is at the tail: page offsets count from the tail.
-- KEYS[1] pending or active list
-- KEYS[2] lease zset (read only when ARGV[5] is 1)
-- ARGV[1] first offset from the tail, 0-based
-- ARGV[2] last offset from the tail, inclusive
-- ARGV[3] task key prefix asynq:{q}:t:
-- ARGV[4] now, Unix seconds
-- ARGV[5] 1 to flag orphaned tasks (active list), else 0
-- Returns a flat array of quadruples {msg, result, orphaned, progress}, oldest first;
-- result is nil when never written; orphaned is 1 when the task's lease expired at or
-- before now; progress is the pyasynq field `pyasynq:progress` (nil when never reported).
-- Ids whose hash is missing are skipped.
local ids = redis.call("LRANGE", KEYS[1], -(tonumber(ARGV[2]) + 1), -(tonumber(ARGV[1]) + 1))
local check_lease = ARGV[5] == "1"
local now = tonumber(ARGV[4])
local out = {}
for i = #ids, 1, -1 do
    local id = ids[i]
    local msg, result, progress =
        unpack(redis.call("HMGET", ARGV[3] .. id, "msg", "result", "pyasynq:progress"))
    if msg then
        local orphaned = 0
        if check_lease then
            local lease = redis.call("ZSCORE", KEYS[2], id)
            if lease and tonumber(lease) <= now then
                orphaned = 1
            end
        end
        out[#out + 1] = msg
        out[#out + 1] = result
        out[#out + 1] = orphaned
        out[#out + 1] = progress
    end
end
return out
