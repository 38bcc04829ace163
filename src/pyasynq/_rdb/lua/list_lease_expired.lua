-- list_lease_expired: the tasks whose lease ran out, for the recoverer (wire spec 3.13).
-- KEYS[1] lease zset
-- ARGV[1] cutoff, Unix seconds (now - 30 s): leases scored <= cutoff have expired
-- ARGV[2] task key prefix asynq:{q}:t:
-- Returns a flat array of triples, in lease order:
--   [id1, msg1, crashes1, id2, msg2, crashes2, ...]
-- msg is the encoded TaskMessage, or nil when the id has no task hash / no msg (Go skips
-- those; pyasynq reports them so the recoverer can quarantine them). crashes is the integer
-- in the pyasynq hash field `crashes` (0 when absent): how often the recoverer already
-- handled this task after its worker died. A task key that is not a hash (a string, say)
-- gives msg nil and crashes -1 (pyasynq: quarantined), instead of failing the listing.
local out = {}
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])
for _, id in ipairs(ids) do
    -- pcall: a task key of another type must not fail the whole listing (the recoverer
    -- would then recover nothing in this queue); crashes -1 marks it, for quarantine.
    local f = redis.pcall("HMGET", ARGV[2] .. id, "msg", "crashes")
    out[#out + 1] = id
    if f.err then
        out[#out + 1] = false
        out[#out + 1] = -1
    else
        out[#out + 1] = f[1]
        out[#out + 1] = tonumber(f[2]) or 0
    end
end
return out
