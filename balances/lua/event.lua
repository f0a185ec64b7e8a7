-- EVENT: a one-off debit (refused when the account cannot pay it, if asked) or credit, with
-- its record and a tombstone for duplicates (see balances/engine.py for the rules). An orphan
-- stop (a stop whose session was not found) is first checked against the session's tombstone
-- and closed markers.
-- KEYS: 1 account hash, 2 session hash, 3 the shard's stream, then (with a marker) the marker
--       hashes of the session's slice, oldest hour first, the current hour's last.
-- ARGV: 1 account id, 2 request number, 3 now ms, 4 day key, 5 month key, 6 debit,
--       7 require funds ('1'/'0'), 8 record, 9 context, 10 tombstone ttl ms,
--       11 tombstone grace ms, 12 marker digest ('' = no marker), 13 marker hash ttl ms,
--       14 orphan stop ('1'/'0'), 15 the stream's bound (0 = none: a debit that requires
--       funds is refused while the stream holds that many records; -1: the whole queue is
--       full), 16 number of bundle uses,
--       then per use: id, period, seconds.
local akey, skey, stream = KEYS[1], KEYS[2], KEYS[3]
local rn = tonumber(ARGV[2])
local now = tonumber(ARGV[3])

local a = load_account(akey)
if not a then
  return simple('denied', 'unknown_account', nil, -1)
end
local orphan = ARGV[14] == '1'
local s = load_session(skey, now)
if s then
  if s.open then
    return simple('denied', 'session_exists', a, s.ver)
  end
  if s.ver == rn and (s.kind == 'event' or orphan) then
    return duplicate(s)
  end
  if orphan then
    return simple('already_closed', '', a, -1)
  end
  return simple('unknown_session', '', a, -1)
end
if orphan and ARGV[12] ~= '' then
  local m = find_marker(4, ARGV[12])
  if m then
    if m[1] ~= rn then
      return simple('already_closed', '', a, -1)
    end
    return {'duplicate', pack_result('duplicate', '', {}, {}, {}, m[2], a.bal, available(a), m[1]),
      '', m[3]}
  end
end

roll(a, ARGV[4], ARGV[5])
local amount = tonumber(ARGV[6])
if amount > 0 then
  if a.status ~= 'active' then
    return simple('denied', a.status, a, -1)
  end
  if ARGV[7] == '1' then
    local bound = tonumber(ARGV[15])
    if not orphan and (bound < 0 or (bound > 0 and redis.call('XLEN', stream) >= bound)) then
      return simple('denied', 'record_queue_full', a, -1)
    end
    if amount > available(a) then
      return simple('denied', 'insufficient_funds', a, -1)
    end
    if a.dcap ~= NO_LIMIT and a.dspent + a.held + amount > a.dcap then
      return simple('denied', 'daily_cap', a, -1)
    end
    if a.mcap ~= NO_LIMIT and a.mspent + a.held + amount > a.mcap then
      return simple('denied', 'monthly_cap', a, -1)
    end
  end
end
local debited = debit(a, amount)

local nu = tonumber(ARGV[16])
local bundles = nil
if nu > 0 then
  bundles = load_bundles(akey)
  local touched = {}
  local i = 17
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
tombstone(skey, rn, 'event', now + ttl, '', packed, ARGV[9], ttl + tonumber(ARGV[11]))
leave_marker(ARGV[12], ARGV[13], rn, debited, ARGV[9])
return {'ok', packed, '', ''}
