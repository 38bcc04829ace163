-- write_server_state: a server's heartbeat record and its active workers (wire spec 3.19).
-- KEYS[1] server info key asynq:servers:{<host>:<pid>:<server id>}
-- KEYS[2] workers key asynq:workers:{<host>:<pid>:<server id>} (same hash tag, same slot)
-- ARGV[1] TTL, whole seconds (2 x heartbeat interval)
-- ARGV[2] encoded ServerInfo
-- ARGV[3], ARGV[4], ... pairs of (task id, encoded WorkerInfo), none when idle
-- Returns 1. The server key is SETEX'ed; the workers hash is deleted and rewritten with the
-- pairs, then given the TTL (with no pairs the key simply does not exist).
-- The caller ZADDs both key names to asynq:servers / asynq:workers separately.
redis.call("SETEX", KEYS[1], ARGV[1], ARGV[2])
redis.call("DEL", KEYS[2])
for i = 3, #ARGV, 2 do
    redis.call("HSET", KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call("EXPIRE", KEYS[2], ARGV[1])
return 1
