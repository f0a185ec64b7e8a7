-- HOLD: open or update a session and set its holds (see balances/engine.py for the rules).
-- An opening hold with a marker digest first looks for the session's closed marker: a session
-- the store remembers closed is not opened again.
-- KEYS: 1 account hash, 2 session hash, 3 the shard's deadline zset, 4 the shard's record
--       stream (its length is read, O(1), by an opening hold only), then (with a marker
--       digest, last in KEYS: a gate's keys may come between) the marker hashes of the
--       session's slice, oldest hour first.
-- ARGV: 1 account id, 2 session id, 3 request number, 4 now ms, 5 day key, 6 month key,
--       7 new session ('1'/'0'), 8 expected version ('' = none), 9 deadline ms, 10 state,
--       11 context, 12 the stream's bound (0 = none, -1 = the whole queue is full),
--       13 marker digest ('' = none), 14 number of marker hashes, 15 number of holds, then
--       per hold: key, desired, min, keep; then the number of bundle holds, then per bundle
--       hold: id, period, allowance, desired, keep.
local akey, skey, dlkey, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rn = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local new = ARGV[7] == '1'

local a = load_account(akey)
if not a then
  return simple('denied', 'unknown_account', nil, -1)
end
local s, exists = load_session(skey, now)
local ver = -1
if s then
  if not s.open then
    if new then
      return simple('already_closed', '', a, -1)
    end
    return simple('unknown_session', '', a, -1)
  end
  if s.ver == rn and s.kind == 'hold' then
    return duplicate(s)
  end
  if new then
    return simple('denied', 'session_exists', a, s.ver)
  end
  if ARGV[8] ~= '' and tonumber(ARGV[8]) ~= s.ver then
    return simple('stale', '', a, s.ver, s.state)
  end
  ver = s.ver
elseif not new then
  return simple('unknown_session', '', a, -1)
elseif ARGV[13] ~= '' and find_marker(#KEYS - tonumber(ARGV[14]) + 1, ARGV[13]) then
  return simple('already_closed', '', a, -1)
end
if a.status ~= 'active' then
  return simple('denied', a.status, a, ver)
end
if new and a.maxs ~= NO_LIMIT and a.sess >= a.maxs then
  return simple('denied', 'too_many_sessions', a, ver)
end
if new then
  local bound = tonumber(ARGV[12])
  if bound < 0 or (bound > 0 and redis.call('XLEN', stream) >= bound) then
    return simple('denied', 'record_queue_full', a, ver)
  end
end

local bal0, avail0 = a.bal, available(a)
roll(a, ARGV[5], ARGV[6])
local holds = {}
local bholds = {}
if s then
  holds = unpack_map(s.holds)
  bholds = unpack_map(s.bh)
end

local credit = credit_of(a)
local grants, reasons = {}, {}
local denied_all = true
local n = tonumber(ARGV[15])
local i = 16
for h = 1, n do
  local key = ARGV[i]
  local desired, least, keep = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local other = a.held - (holds[key] or 0)
  if desired < keep then
    desired = keep
  end
  if least > desired then
    least = desired
  end
  local rooms = {{a.bal + credit - other - keep, 'insufficient_funds'}}
  if a.dcap ~= NO_LIMIT then
    rooms[#rooms + 1] = {a.dcap - a.dspent - other - keep, 'daily_cap'}
  end
  if a.mcap ~= NO_LIMIT then
    rooms[#rooms + 1] = {a.mcap - a.mspent - other - keep, 'monthly_cap'}
  end
  local room = rooms[1][1]
  for r = 2, #rooms do
    if rooms[r][1] < room then
      room = rooms[r][1]
    end
  end
  if room < 0 then
    room = 0
  end
  local grant = keep + math.min(desired - keep, room)
  local reason = ''
  if grant < least then
    grant = keep
    for r = 1, #rooms do
      if keep + math.max(0, rooms[r][1]) < least then
        reason = rooms[r][2]
        break
      end
    end
  else
    denied_all = false
  end
  if grant > 0 then
    holds[key] = grant
  else
    holds[key] = nil
  end
  a.held = other + grant
  grants[h] = grant
  reasons[h] = reason
end

local nb = tonumber(ARGV[i])
i = i + 1
local bundles = nil
local bgrants = {}
local any_free = false
if nb > 0 then
  bundles = load_bundles(akey)
  local replaced = {}
  for b = 1, nb do
    local id, period = ARGV[i], ARGV[i + 1]
    local allowance, desired, keep = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
      tonumber(ARGV[i + 4])
    i = i + 5
    local previous = bholds[id]
    local current = 0
    if replaced[id] ~= period then
      if previous then
        local pc = counts(bundles, id, previous[1])
        pc[2] = pc[2] - previous[2]
      end
      replaced[id] = period
    elseif previous then
      current = previous[2]
    end
    local c = counts(bundles, id, period)
    if desired < keep then
      desired = keep
    end
    local room = allowance - c[1] - c[2] - keep
    if room < 0 then
      room = 0
    end
    local grant = keep + math.min(desired - keep, room)
    c[2] = c[2] + grant
    if current + grant > 0 then
      bholds[id] = {period, current + grant}
    else
      bholds[id] = nil
    end
    if grant > 0 then
      any_free = true
    end
    bgrants[b] = grant
  end
  for id, period in pairs(replaced) do
    prune(bundles, id, period)
  end
end

if new and n > 0 and denied_all and not any_free then
  local packed = pack_result('denied', reasons[1], grants, reasons, bgrants, 0, bal0, avail0, -1)
  return {'denied', packed, '', ''}
end
if new then
  a.sess = a.sess + 1
end
if out_of_range(a) then
  return redis.error_reply(RANGE_ERROR)
end

local packed = pack_result('ok', '', grants, reasons, bgrants, 0, a.bal, available(a), rn)
if exists and not s then
  redis.call('DEL', skey) -- an expired tombstone: the new session starts afresh, without TTL
end
save_account(akey, a, bundles)
local deadline = tonumber(ARGV[9])
redis.call('HSET', skey, 'acct', ARGV[1], 'sid', ARGV[2], 'open', '1', 'ver', fmt(rn),
  'kind', 'hold', 'dl', fmt(deadline), 'state', ARGV[10], 'holds', cmsgpack.pack(holds),
  'bh', cmsgpack.pack(bholds), 'res', packed, 'ctx', ARGV[11])
redis.call('ZADD', dlkey, fmt(deadline), skey)
return {'ok', packed, '', ''}
