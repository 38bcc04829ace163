-- record_scheduler_event: log one enqueue by a scheduler entry (wire spec 3.19).
-- KEYS[1] history zset asynq:scheduler_history:<entry id>
-- ARGV[1] enqueue time, Unix seconds (the score)
-- ARGV[2] encoded SchedulerEnqueueEvent (the member)
-- ARGV[3] cap (1000)
-- Returns 1. Ranks 0 .. N-cap are removed first, so the zset holds at most cap events.
redis.call("ZREMRANGEBYRANK", KEYS[1], 0, -tonumber(ARGV[3]))
redis.call("ZADD", KEYS[1], ARGV[1], ARGV[2])
return 1
