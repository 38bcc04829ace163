-- inspect_update_payload: replace a scheduled task's msg (wire spec 3.20,
-- UpdateTaskPayload). The caller read the task, swapped the payload inside the decoded
-- TaskMessage and re-encoded it. Only msg is written, so state, pending_since, group,
-- unique_key and result stay as they are.
-- KEYS[1] task hash asynq:{q}:t:<id>
-- ARGV[1] new encoded TaskMessage
-- Returns 1 updated; 0 no such task; -1 the task is not scheduled (nothing changed).
if redis.call("EXISTS", KEYS[1]) == 0 then
    return 0
end
if redis.call("HGET", KEYS[1], "state") ~= "scheduled" then
    return -1
end
redis.call("HSET", KEYS[1], "msg", ARGV[1])
return 1
