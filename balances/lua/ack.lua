-- ACK: acknowledge and delete records of one shard's stream together, so that an
-- acknowledged record never lingers (nor counts in the depth).
-- KEYS: 1 the shard's stream.
-- ARGV: 1 consumer group, then the entry ids.
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
