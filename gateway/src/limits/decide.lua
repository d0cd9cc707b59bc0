-- One rate-limit decision, atomically: the quota (if any), then the rate (GCRA).
-- Mirrors gatehouse_policies::ratelimit (gcra.rs, quota.rs); the gateway recomputes every
-- figure a client sees from what this returns, with the same Rust code as the local mode.
--
-- KEYS[1]  the rate key (its value: the TAT, microseconds)
-- KEYS[2]  the quota counter of the current period (unused when ARGV[4] is 0)
-- ARGV[1]  now in microseconds, or '' to use the Redis server's clock (one clock for all
--          nodes; tests pass a fake one)
-- ARGV[2]  T, the emission interval in microseconds
-- ARGV[3]  B, the burst
-- ARGV[4]  the quota limit, 0 for none
-- ARGV[5]  how long the quota counter must live, milliseconds (its period's rest and a day)
-- Returns {admitted (0|1), max(TAT, now), now, quota used before this request, refused by
-- (0 none, 1 rate, 2 quota)}.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local interval = tonumber(ARGV[2])
local tolerance = (tonumber(ARGV[3]) - 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local qlimit = tonumber(ARGV[4])
local used = 0
if qlimit > 0 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= qlimit then return {0, tat, now, used, 2} end
end
if tat - now > tolerance then return {0, tat, now, used, 1} end
local new = tat + interval
-- Once the TAT is past, a missing key and a stored one decide alike: the key lives that long
-- plus a minute of slack (callers with a clock of their own may run slightly behind Redis).
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX',
  string.format('%.0f', math.ceil((new - now) / 1000) + 60000))
if qlimit > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return {1, tat, now, used, 0}
