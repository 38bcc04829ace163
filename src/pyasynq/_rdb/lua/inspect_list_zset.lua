-- inspect_list_zset: one page of a task zset by ascending score (wire spec 3.20): scheduled,
-- retry, archived, completed, or a group asynq:{q}:g:<group> for aggregating tasks.
-- KEYS[1] the zset
-- ARGV[1] first rank, 0-based
-- ARGV[2] last rank, inclusive
-- ARGV[3] task key prefix asynq:{q}:t:
-- Returns a flat array of triples {msg, score, result}; score is the zset score as a
-- string, result is nil when never written. Ids whose hash is missing are skipped.
local pairs_ = redis.call("ZRANGE", KEYS[1], ARGV[1], ARGV[2], "WITHSCORES")
local out = {}
for i = 1, #pairs_, 2 do
    local msg, result = unpack(redis.call("HMGET", ARGV[3] .. pairs_[i], "msg", "result"))
    if msg then
        out[#out + 1] = msg
        out[#out + 1] = pairs_[i + 1]
        out[#out + 1] = result
    end
end
return out
