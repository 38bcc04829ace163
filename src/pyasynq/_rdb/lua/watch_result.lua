-- watch_result: read a task's outcome for a waiter and ask to be told of the rest (pyasynq).
-- KEYS[1] task hash asynq:{q}:t:<id>
-- KEYS[2] the queue's waiting flag asynq:{q}:pyasynq:waiting
-- ARGV[1] the waiter's Pub/Sub channel (pyasynq:result:<listener id>)
-- ARGV[2] most channels one task keeps (older ones are dropped first)
-- ARGV[3] seconds the waiting flag lives (each read of a waiter renews it)
-- Returns nil when the hash does not exist or has no msg (deleted, or done without
-- retention), else {state, msg, result, progress} (result/progress nil when never written).
-- Unless the state is completed or archived, ARGV[1] is added to the hash field
-- `pyasynq:notify` (space-separated channels): the scripts that write a final outcome
-- (done, done_many, mark_complete, archive) and report_progress PUBLISH to each of them.
-- It also sets KEYS[2] (done_many announces only while that flag exists).
-- Go ignores the field and the flag; a Go server that finishes the task publishes nothing.
local msg, state, result, progress, notify =
    unpack(redis.call("HMGET", KEYS[1], "msg", "state", "result", "pyasynq:progress",
        "pyasynq:notify"))
if not msg then
    return nil
end
if state ~= "completed" and state ~= "archived" then
    local chans = {}
    for ch in string.gmatch(notify or "", "%S+") do
        if ch ~= ARGV[1] then
            chans[#chans + 1] = ch
        end
    end
    chans[#chans + 1] = ARGV[1]
    while #chans > tonumber(ARGV[2]) do
        table.remove(chans, 1)
    end
    redis.call("HSET", KEYS[1], "pyasynq:notify", table.concat(chans, " "))
    redis.call("SET", KEYS[2], "1", "EX", ARGV[3])
end
return {state, msg, result, progress}
