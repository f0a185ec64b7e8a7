-- LEDGER: a top-up, payment, adjustment or refund, applied once per idempotency key (kept for
-- good), with its record. A debit that would take a prepaid balance (less its holds) below
-- zero is refused.
-- KEYS: 1 account hash, 2 the account's idempotency hash, 3 the shard's stream.
-- ARGV: 1 account id, 2 amount, 3 idempotency key, 4 record, 5 now ms.
-- Returns {applied (0/1), duplicate (0/1), balance, reason}.
local akey, lkey, stream = KEYS[1], KEYS[2], KEYS[3]
local a = load_account(akey)
if not a then
  return {0, 0, 0, 'unknown_account'}
end
local seen = redis.call('HGET', lkey, ARGV[3])
if seen then
  return {0, 1, seen, ''}
end
local amount = tonumber(ARGV[2])
if amount < 0 and a.kind == 'prepaid' and a.bal + amount - a.held < 0 then
  return {0, 0, fmt(a.bal), 'insufficient_funds'}
end
a.bal = a.bal + amount
if out_of_range(a) then
  return redis.error_reply(RANGE_ERROR)
end
redis.call('HSET', akey, 'bal', fmt(a.bal))
redis.call('HSET', lkey, ARGV[3], fmt(a.bal))
append_record(stream, 'ledger', ARGV[1], amount, a.bal, tonumber(ARGV[5]), ARGV[4])
return {1, 0, fmt(a.bal), ''}
