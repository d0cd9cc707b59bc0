-- A node says it is alive and learns how many are: a sorted set of node ids scored by the
-- Redis server's clock (milliseconds); members older than the TTL are dropped.
-- KEYS[1] the set; ARGV[1] this node's id; ARGV[2] the TTL in milliseconds.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - ttl))
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
