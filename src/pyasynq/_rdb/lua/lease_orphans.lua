-- lease_orphans: give an expired lease to active ids that have none (pyasynq only).
-- KEYS[1] active list
-- KEYS[2] lease zset
-- ARGV[1] lease score, Unix seconds (now: it expires like a lease ending now)
-- ARGV[2] the most ids to look at, from the oldest end of active (>= 1)
-- Returns the ids that got a lease.
-- Every dequeue (pyasynq's and Go's) adds the lease entry in the same script that moves the
-- id to active, and every outcome removes both, so an active id without one was evicted
-- or edited by hand. Without a lease nothing would ever take it out of active; with one
-- that ends now, the recoverer handles it like a dead worker's task once the usual grace
-- has passed (a live worker that still holds the task extends it first).
-- Runs when Redis is full (flags=allow-oom, see scripts.py).
local adopted = {}
local ids = redis.call("LRANGE", KEYS[1], -tonumber(ARGV[2]), -1)
for _, id in ipairs(ids) do
    if not redis.call("ZSCORE", KEYS[2], id) then
        redis.call("ZADD", KEYS[2], ARGV[1], id)
        adopted[#adopted + 1] = id
    end
end
return adopted
