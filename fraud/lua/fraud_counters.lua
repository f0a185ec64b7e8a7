-- The fraud counters of one account, read and changed in one atomic pass.
--
-- Every key carries the account's hash tag {<prefix>:<shard>} (the balance store's), so this
-- touches one slot and runs unchanged on Redis Cluster.
--
-- fraud_counters(keys, kbase, argv, abase) takes operation i's key from keys[kbase + i] and
-- its arguments from argv, starting at abase + 1:
--   now_ms, buckets, n, then n times: kind, window_ms, add, member, trip_at
-- kinds: W  sliding-window sum (hash: bucket number -> amount; adds `add` first)
--        L+ L~ L- L#  live calls (sorted set: session -> expiry): add, refresh, remove, count
--        S? S# S+  countries called (hash: country -> last call ms): known, how many, add
-- It returns {gate_trips, live_registered, value_1, ..., value_n}. When any operation's value
-- reached its trip_at (>= 0), the attempt added by L+ is taken out again.
--
-- Folding into another script (the balance reservation): paste this function into it, call
-- it first with that script's key and argument offsets, skip the reservation when
-- gate_trips > 0, and return its table with the reservation's reply.
local function fraud_counters(keys, kbase, argv, abase)
  local now = tonumber(argv[abase + 1])
  local buckets = tonumber(argv[abase + 2])
  local n = tonumber(argv[abase + 3])
  local out = {0, 0}
  local trips = 0
  local live_key, live_member = nil, nil
  for i = 1, n do
    local a = abase + 3 + (i - 1) * 5
    local kind = argv[a + 1]
    local window = tonumber(argv[a + 2])
    local add = tonumber(argv[a + 3])
    local member = argv[a + 4]
    local trip_at = tonumber(argv[a + 5])
    local key = keys[kbase + i]
    local value = 0
    if kind == 'W' then
      local width = math.ceil(window / buckets)
      local current = math.floor(now / width)
      local first = current - buckets + 1
      if add ~= 0 then
        redis.call('HINCRBY', key, current, add)
        redis.call('PEXPIRE', key, window + width)
        if redis.call('HLEN', key) > buckets + 1 then
          for _, f in ipairs(redis.call('HKEYS', key)) do
            if tonumber(f) < first then
              redis.call('HDEL', key, f)
            end
          end
        end
      end
      local fields = {}
      for b = first, current do
        fields[#fields + 1] = b
      end
      for _, v in ipairs(redis.call('HMGET', key, unpack(fields))) do
        if v then
          value = value + tonumber(v)
        end
      end
    elseif kind == 'L#' then
      value = redis.call('ZCOUNT', key, '(' .. now, '+inf') + add
    elseif kind == 'L+' or kind == 'L~' or kind == 'L-' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      if kind == 'L+' then
        if redis.call('ZADD', key, now + window, member) == 1 then
          live_key, live_member = key, member
        end
        out[2] = 1
      elseif kind == 'L~' then
        redis.call('ZADD', key, 'XX', now + window, member)
      else
        redis.call('ZREM', key, member)
      end
      value = redis.call('ZCARD', key)
      if value > 0 then
        redis.call('PEXPIRE', key, window)
      end
    elseif kind == 'S?' then
      local last = redis.call('HGET', key, member)
      if last and tonumber(last) + window > now then
        value = 1
      end
    elseif kind == 'S#' then
      for _, last in ipairs(redis.call('HVALS', key)) do
        if tonumber(last) + window > now then
          value = value + 1
        end
      end
    elseif kind == 'S+' then
      local last = redis.call('HGET', key, member)
      if not (last and tonumber(last) + window > now) then
        value = 1
      end
      redis.call('HSET', key, member, now)
      redis.call('PEXPIRE', key, window)
    else
      return redis.error_reply('fraud_counters: unknown operation ' .. tostring(kind))
    end
    if trip_at >= 0 and value >= trip_at then
      trips = trips + 1
    end
    out[#out + 1] = value
  end
  out[1] = trips
  if trips > 0 and live_key then
    redis.call('ZREM', live_key, live_member)
    out[2] = 0
  end
  return out
end
