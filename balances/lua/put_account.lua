-- PUT ACCOUNT: create an account with a zero balance, or update its limits and status without
-- touching its money, holds or counters.
-- KEYS: 1 account hash.
-- ARGV: 1 kind, 2 status, 3 credit limit, 4 daily cap, 5 monthly cap, 6 max sessions.
local akey = KEYS[1]
if redis.call('EXISTS', akey) == 0 then
  redis.call('HSET', akey, 'bal', '0', 'held', '0', 'dkey', '', 'dspent', '0', 'mkey', '',
    'mspent', '0', 'sess', '0', 'bun', '')
end
redis.call('HSET', akey, 'kind', ARGV[1], 'status', ARGV[2], 'credit', ARGV[3],
  'dcap', ARGV[4], 'mcap', ARGV[5], 'maxs', ARGV[6])
return 1
