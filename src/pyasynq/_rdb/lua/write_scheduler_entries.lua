-- write_scheduler_entries: a scheduler's heartbeat record of its entries (wire spec 3.19).
-- KEYS[1] entries list asynq:schedulers:{<scheduler id>}
-- ARGV[1] TTL, whole seconds (2 x scheduler heartbeat interval)
-- ARGV[2], ARGV[3], ... encoded SchedulerEntry, one per registered entry
-- Returns 1. The list is deleted, each entry LPUSHed, then the TTL set (with no entries
-- the key does not exist). The caller ZADDs the key name to asynq:schedulers separately.
redis.call("DEL", KEYS[1])
for i = 2, #ARGV do
    redis.call("LPUSH", KEYS[1], ARGV[i])
end
redis.call("EXPIRE", KEYS[1], ARGV[1])
return 1
