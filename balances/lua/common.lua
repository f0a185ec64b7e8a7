-- Shared by every step script: loaded in front of each one (see redis_store.py).
--
-- Numbers: Lua numbers are doubles. Every amount the store keeps or is given is within
-- +/-2^50 (checked in Python before the call and here before any write), so the sums of a few
-- of them stay below 2^53 where doubles are exact. Numbers are written back with
-- string.format('%d'), never with Lua's own conversion (which would write 1e+15).
--
-- Atomicity: a script first reads and checks everything, then writes; an error is only ever
-- raised before the first write, so a step is done whole or not at all.

local MAX = 1125899906842624 -- 2^50
local NO_LIMIT = -1

local function fmt(n)
  return string.format('%d', n)
end

local ACCOUNT_FIELDS = {
  'bal', 'held', 'kind', 'status', 'credit', 'dcap', 'mcap', 'dkey', 'dspent', 'mkey',
  'mspent', 'sess', 'maxs',
}

local function load_account(key)
  local v = redis.call('HMGET', key, unpack(ACCOUNT_FIELDS))
  if not v[1] then
    return nil
  end
  return {
    bal = tonumber(v[1]), held = tonumber(v[2]), kind = v[3], status = v[4],
    credit = tonumber(v[5]), dcap = tonumber(v[6]), mcap = tonumber(v[7]),
    dkey = v[8], dspent = tonumber(v[9]), mkey = v[10], mspent = tonumber(v[11]),
    sess = tonumber(v[12]), maxs = tonumber(v[13]),
  }
end

local function credit_of(a)
  if a.kind == 'postpaid' then
    return a.credit
  end
  return 0
end

local function available(a)
  return a.bal + credit_of(a) - a.held
end

local function roll(a, day, month)
  if a.dkey ~= day then
    a.dkey = day
    a.dspent = 0
  end
  if a.mkey ~= month then
    a.mkey = month
    a.mspent = 0
  end
end

local function out_of_range(a)
  for _, v in ipairs({a.bal, a.held, a.dspent, a.mspent}) do
    if v >= MAX or v <= -MAX then
      return true
    end
  end
  return false
end

local RANGE_ERROR = 'OCSD_RANGE the account would leave the exact range'

local function save_account(key, a, bundles)
  redis.call('HSET', key, 'bal', fmt(a.bal), 'held', fmt(a.held), 'dkey', a.dkey,
    'dspent', fmt(a.dspent), 'mkey', a.mkey, 'mspent', fmt(a.mspent), 'sess', fmt(a.sess))
  if bundles then
    redis.call('HSET', key, 'bun', cmsgpack.pack(bundles))
  end
end

-- Bundle counters of an account: {bundle id = {period = {used, held}}}.
local function load_bundles(key)
  local packed = redis.call('HGET', key, 'bun')
  if not packed or packed == '' then
    return {}
  end
  return cmsgpack.unpack(packed)
end

local function counts(bundles, bundle_id, period)
  local periods = bundles[bundle_id]
  if not periods then
    periods = {}
    bundles[bundle_id] = periods
  end
  local c = periods[period]
  if not c then
    c = {0, 0}
    periods[period] = c
  end
  return c
end

-- Byte order (as Python compares str): Lua's own `<` on strings follows the server's locale.
local function before(x, y)
  local n = math.min(#x, #y)
  for i = 1, n do
    local bx, by = string.byte(x, i), string.byte(y, i)
    if bx ~= by then
      return bx < by
    end
  end
  return #x < #y
end

-- Drop the periods older than `period` (byte order) that nothing holds any more.
local function prune(bundles, bundle_id, period)
  local periods = bundles[bundle_id]
  if not periods then
    return
  end
  local old = {}
  for p, c in pairs(periods) do
    if before(p, period) and c[2] == 0 then
      old[#old + 1] = p
    end
  end
  for _, p in ipairs(old) do
    periods[p] = nil
  end
  if next(periods) == nil then
    bundles[bundle_id] = nil
  end
end

-- Results: {status, packed result, session state, context}; the packed result is what a
-- duplicate gets back (see engine.pack_result for its fields).
local function pack_result(status, reason, holds, reasons, bholds, debited, bal, avail, ver)
  return cmsgpack.pack({status, reason, holds, reasons, bholds, debited, bal, avail, ver})
end

local function simple(status, reason, a, ver, state)
  local bal, avail = 0, 0
  if a then
    bal = a.bal
    avail = available(a)
  end
  return {status, pack_result(status, reason or '', {}, {}, {}, 0, bal, avail, ver or -1),
    state or '', ''}
end

local SESSION_FIELDS = {'open', 'ver', 'kind', 'exp', 'state', 'holds', 'bh', 'res', 'ctx'}

-- The session at `key`, or nil when there is none or its tombstone expired by `now`; the
-- second value tells whether the key exists (an expired tombstone Redis still keeps).
local function load_session(key, now)
  local v = redis.call('HMGET', key, unpack(SESSION_FIELDS))
  if not v[1] then
    return nil, false
  end
  local s = {open = v[1] == '1', ver = tonumber(v[2]), kind = v[3], state = v[5] or '',
    holds = v[6], bh = v[7], res = v[8], ctx = v[9] or ''}
  if not s.open and now >= tonumber(v[4]) then
    return nil, true
  end
  return s, true
end

local function unpack_map(packed)
  if not packed or packed == '' then
    return {}
  end
  return cmsgpack.unpack(packed)
end

local function duplicate(s)
  return {'duplicate', s.res, s.state, s.ctx}
end

-- Close a session or record an event: the tombstone remembers the result until `exp`. The
-- fields only an open session uses may stay behind: nothing reads them once 'open' is '0'.
local function tombstone(skey, ver, kind, exp, state, packed, ctx, ttl_ms)
  redis.call('HSET', skey, 'open', '0', 'ver', fmt(ver), 'kind', kind, 'exp', fmt(exp),
    'state', state, 'res', packed, 'ctx', ctx)
  redis.call('PEXPIRE', skey, fmt(ttl_ms))
end

-- Closed markers (see redis_store.py): KEYS from `first` to the last are the hourly marker
-- hashes of the session's slice, oldest first; the last one is the current hour's.
-- The value is msgpack {request number, debited, context}.
local function find_marker(first, digest)
  for i = #KEYS, first, -1 do
    local packed = redis.call('HGET', KEYS[i], digest)
    if packed then
      return cmsgpack.unpack(packed)
    end
  end
  return nil
end

-- The hour's hash gets its TTL when it is made (a write command less on every other close:
-- every marker of the hour expires with it anyway).
local function leave_marker(digest, ttl_ms, rn, debited, ctx)
  if digest == '' then
    return
  end
  local key = KEYS[#KEYS]
  local new = redis.call('EXISTS', key) == 0
  redis.call('HSET', key, digest, cmsgpack.pack({rn, debited, ctx}))
  if new then
    redis.call('PEXPIRE', key, ttl_ms)
  end
end

-- Debit (a refund is negative): a prepaid balance is debited at most down to zero.
local function debit(a, amount)
  if amount > 0 and a.kind == 'prepaid' then
    local most = a.bal
    if most < 0 then
      most = 0
    end
    if amount > most then
      amount = most
    end
  end
  a.bal = a.bal - amount
  if amount > 0 then
    a.dspent = a.dspent + amount
    a.mspent = a.mspent + amount
  end
  return amount
end

local function append_record(stream, kind, account_id, amount, bal, now, payload)
  redis.call('XADD', stream, '*', 'k', kind, 'a', account_id, 'm', fmt(amount), 'b', fmt(bal),
    't', fmt(now), 'p', payload)
end
