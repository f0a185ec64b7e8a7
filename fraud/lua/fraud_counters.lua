-- The fraud counters of one account, read and changed in one atomic pass.
--
-- Every key carries the account's hash tag {<prefix>:<shard>} (the balance store's), so this
-- touches one slot and runs unchanged on Redis Cluster. Keys, from keys[kbase + 1]:
--   1  hash   the account's sliding windows
--   2  zset   live calls: session -> expiry (ms)
--   3  hash   countries called: country -> last call (ms)
--   4+ hash   the sliding windows of one destination country each
-- A sliding window NAME keeps NAME|s (its sum), NAME|t (its newest bucket) and NAME|<bucket>
-- (each bucket's amount); moving to a newer bucket subtracts the buckets that left the
-- window, so reading a window is two fields of one HMGET per key, whatever its length, and
-- adding to it one HSET. Reads never write.
--
-- fraud_counters(keys, kbase, argv, abase) takes, from argv[abase + 1]:
--   now_ms, buckets, n, then n operations "KIND|key|window_ms|add|trip_at|arg"
-- kinds: W  window (arg: its name; adds `add` first)
--        L+ L~ L- L#  live calls (arg: session): add, refresh, remove, count (+ add)
--        S? S# S+  countries (arg: country): called before, how many, add
--        S!  countries (arg: country): 1 when the country is new and at least `add` others
--            were called (the new-country rule as a gate), else 0
-- and returns {gate_trips, live_registered, value_1, ..., value_n}. When any operation's
-- value reached its trip_at (>= 0), the session added by L+ is taken out again.
--
-- Folding into another script (the balance reservation): paste this function into it, call
-- it first with that script's key and argument offsets, skip the reservation when
-- gate_trips > 0, and return this table with the reservation's reply.
local function fraud_counters(keys, kbase, argv, abase)
  local now = tonumber(argv[abase + 1])
  local buckets = tonumber(argv[abase + 2])
  local n = tonumber(argv[abase + 3])
  local ops = {}
  local heads = {}
  local ttl = {}
  for i = 1, n do
    local kind, k, window, add, trip_at, arg =
      string.match(argv[abase + 3 + i], '^([^|]+)|(%d+)|(%d+)|(%-?%d+)|(%-?%d+)|(.*)$')
    local key = keys[kbase + tonumber(k)]
    window = tonumber(window)
    local op = {kind, key, window, tonumber(add), tonumber(trip_at), arg}
    ops[i] = op
    if kind == 'W' then
      local width = math.ceil(window / buckets)
      local c = math.floor(now / width)
      local fields = heads[key]
      if not fields then
        fields = {}
        heads[key] = fields
      end
      op[7] = #fields
      op[8] = c
      fields[#fields + 1] = arg .. '|s'
      fields[#fields + 1] = arg .. '|t'
      fields[#fields + 1] = arg .. '|' .. c
      ttl[key] = math.max(ttl[key] or 0, window + width)
    end
  end
  local state = {}
  for key, fields in pairs(heads) do
    state[key] = redis.call('HMGET', key, unpack(fields))
  end
  local written = {}
  local countries = {}
  local out = {0, 0}
  local trips = 0
  local live_key, live_member = nil, nil
  for i = 1, n do
    local op = ops[i]
    local kind, key, window, add, trip_at, arg = op[1], op[2], op[3], op[4], op[5], op[6]
    local value = 0
    if kind == 'W' then
      local head, at, c = state[key], op[7], op[8]
      local s = tonumber(head[at + 1]) or 0
      local t = tonumber(head[at + 2])
      local gone = nil
      if t and c > t and t > c - buckets * 2 then
        -- The buckets t - buckets + 1 .. c - buckets have left the window.
        gone = {}
        for b = t - buckets + 1, math.min(c - buckets, t) do
          gone[#gone + 1] = arg .. '|' .. b
        end
        if #gone > 0 then
          for _, v in ipairs(redis.call('HMGET', key, unpack(gone))) do
            if v then
              s = s - tonumber(v)
            end
          end
        else
          gone = nil
        end
      elseif t and c > t then
        -- Everything has left the window: the fields go with the next write.
        gone = {}
        for b = t - buckets + 1, t do
          gone[#gone + 1] = arg .. '|' .. b
        end
        s = 0
      end
      if add ~= 0 and (not t or c > t - buckets) then
        if gone then
          redis.call('HDEL', key, unpack(gone))
        end
        if not t or c > t then
          t = c
        end
        s = s + add
        local bucket = (tonumber(head[at + 3]) or 0) + add
        redis.call('HSET', key, arg .. '|' .. c, string.format('%d', bucket),
          arg .. '|s', string.format('%d', s), arg .. '|t', string.format('%d', t))
        written[key] = true
      elseif t and t <= c - buckets then
        s = 0
      end
      value = s
    elseif kind == 'L+' or kind == 'L~' then
      if kind == 'L+' then
        if redis.call('ZADD', key, now + window, arg) == 1 then
          live_key, live_member = key, arg
        end
        out[2] = 1
      else
        redis.call('ZADD', key, 'XX', now + window, arg)
      end
      value = redis.call('ZCOUNT', key, '(' .. now, '+inf')
      redis.call('PEXPIRE', key, window)
    elseif kind == 'L-' then
      redis.call('ZREM', key, arg)
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      value = redis.call('ZCARD', key)
    elseif kind == 'L#' then
      value = redis.call('ZCOUNT', key, '(' .. now, '+inf') + add
    elseif kind == 'S?' or kind == 'S#' then
      local known = countries[key]
      if not known then
        known = redis.call('HGETALL', key)
        countries[key] = known
      end
      for j = 1, #known, 2 do
        if tonumber(known[j + 1]) + window > now and (kind == 'S#' or known[j] == arg) then
          value = value + 1
        end
      end
    elseif kind == 'S!' then
      local known = countries[key]
      if not known then
        known = redis.call('HGETALL', key)
        countries[key] = known
      end
      local seen, size = false, 0
      for j = 1, #known, 2 do
        if tonumber(known[j + 1]) + window > now then
          size = size + 1
          if known[j] == arg then
            seen = true
          end
        end
      end
      if not seen and size >= add then
        value = 1
      end
    elseif kind == 'S+' then
      local last = redis.call('HGET', key, arg)
      if not (last and tonumber(last) + window > now) then
        value = 1
      end
      redis.call('HSET', key, arg, string.format('%d', now))
      redis.call('PEXPIRE', key, window)
    else
      return redis.error_reply('fraud_counters: unknown operation ' .. tostring(kind))
    end
    if trip_at >= 0 and value >= trip_at then
      trips = trips + 1
    end
    out[#out + 1] = value
  end
  for key in pairs(written) do
    -- The longest window the plan names for the key: plans name every window of the key.
    redis.call('PEXPIRE', key, ttl[key])
  end
  out[1] = trips
  if trips > 0 and live_key then
    redis.call('ZREM', live_key, live_member)
    out[2] = 0
  end
  return out
end
