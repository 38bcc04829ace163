-- list_registry: the live members of asynq:servers, asynq:workers or asynq:schedulers
-- (wire spec 3.19).
-- KEYS[1] registry zset (member = full key name, score = expiry, Unix seconds)
-- ARGV[1] now, Unix seconds
-- Returns the members scored >= now, by ascending score. Members scored <= now - 1 are
-- dead and removed.
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", tonumber(ARGV[1]) - 1)
return redis.call("ZRANGEBYSCORE", KEYS[1], ARGV[1], "+inf")
