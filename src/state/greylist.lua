-- Greylist triplet shared by every spamgate instance.
-- KEYS[1]: the triplet key. ARGV: delay, retry window, expiry (milliseconds).
-- Returns 0 new, 1 early (retry before the delay), 2 passed (first retry
-- after the delay), 3 known (confirmed before).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local delay = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'first', 'ok')
if not v[1] then
  redis.call('HSET', KEYS[1], 'first', string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
if v[2] then
  redis.call('PEXPIRE', KEYS[1], expiry)
  return 3
end
if now < tonumber(v[1]) + delay then
  return 1
end
redis.call('HSET', KEYS[1], 'ok', '1')
redis.call('PEXPIRE', KEYS[1], expiry)
return 2
