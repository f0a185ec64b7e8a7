-- CLOSE: end a session: release its holds, debit its cost, consume its free seconds, append
-- its record and leave a tombstone with the result (see balances/engine.py for the rules).
-- KEYS: 1 account hash, 2 session hash, 3 the shard's deadline zset, 4 the shard's stream,
--       5 (with a marker) the current hour's marker hash of the session's slice.
-- ARGV: 1 account id, 2 request number, 3 now ms, 4 day key, 5 month key,
--       6 expected version ('' = none), 7 debit, 8 record, 9 context, 10 tombstone ttl ms,
--       11 tombstone grace ms, 12 marker digest ('' = no marker), 13 marker hash ttl ms,
--       14 number of bundle uses, then per use: id, period, seconds.
local akey, skey, dlkey, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rn = tonumber(ARGV[2])
local now = tonumber(ARGV[3])

local a = load_account(akey)
if not a then
  return simple('denied', 'unknown_account', nil, -1)
end
local s = load_session(skey, now)
if not s then
  return simple('unknown_session', '', a, -1)
end
if not s.open then
  if s.ver == rn and s.kind == 'close' then
    return duplicate(s)
  end
  return simple('unknown_session', '', a, -1)
end
if ARGV[6] ~= '' and tonumber(ARGV[6]) ~= s.ver then
  return simple('stale', '', a, s.ver, s.state)
end

roll(a, ARGV[4], ARGV[5])
for _, amount in pairs(unpack_map(s.holds)) do
  a.held = a.held - amount
end
local debited = debit(a, tonumber(ARGV[7]))
a.sess = a.sess - 1
if a.sess < 0 then
  a.sess = 0
end

local bholds = unpack_map(s.bh)
local nu = tonumber(ARGV[14])
local bundles = nil
if nu > 0 or next(bholds) ~= nil then
  bundles = load_bundles(akey)
  local touched = {}
  for id, held in pairs(bholds) do
    local c = counts(bundles, id, held[1])
    c[2] = c[2] - held[2]
    if not touched[id] or before(touched[id], held[1]) then
      touched[id] = held[1]
    end
  end
  local i = 15
  for _ = 1, nu do
    local id, period = ARGV[i], ARGV[i + 1]
    local c = counts(bundles, id, period)
    c[1] = c[1] + tonumber(ARGV[i + 2])
    if not touched[id] or before(touched[id], period) then
      touched[id] = period
    end
    i = i + 3
  end
  for id, period in pairs(touched) do
    prune(bundles, id, period)
  end
end
if out_of_range(a) then
  return redis.error_reply(RANGE_ERROR)
end

local packed = pack_result('ok', '', {}, {}, {}, debited, a.bal, available(a), rn)
save_account(akey, a, bundles)
append_record(stream, 'cdr', ARGV[1], debited, a.bal, now, ARGV[8])
local ttl = tonumber(ARGV[10])
tombstone(skey, rn, 'close', now + ttl, s.state, packed, ARGV[9], ttl + tonumber(ARGV[11]))
redis.call('ZREM', dlkey, skey)
leave_marker(ARGV[12], ARGV[13], rn, debited, ARGV[9])
return {'ok', packed, '', ''}
