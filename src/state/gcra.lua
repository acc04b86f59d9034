-- GCRA rate limit shared by every spamgate instance.
-- KEYS[1]: the limit key. ARGV[1]: emission interval in microseconds
-- (one event per interval on average). ARGV[2]: burst.
-- Returns 1 when the event is allowed (and counted), 0 when limited.
-- Redis's own clock is used so that instances need not agree on time.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
if new_tat - now > interval * burst then
  return 0
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return 1
