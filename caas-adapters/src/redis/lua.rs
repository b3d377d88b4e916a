//! The server-side scripts. Each runs atomically in Redis, so every node's
//! read-modify-write of one key is serialized there.
//!
//! Times are unix nanoseconds, which do not fit the doubles of Redis's Lua
//! exactly (2^53 is about 104 days of nanoseconds), so the scripts never do
//! arithmetic on them as numbers: a `u64` travels as its decimal string and is
//! held as two limbs, `hi * 1e9 + lo`, each below 2^53, with exact saturating
//! add and subtract and a comparison. Anything else read from a key (written by
//! something other than these scripts) is reported as an error reply or
//! skipped, never trusted.

use std::sync::LazyLock;

use redis::Script;

/// The limb arithmetic shared by the scripts.
const PRELUDE: &str = r#"
local B = 1000000000
local MAX = {18446744073, 709551615}
local function cmp(a, b)
  if a[1] ~= b[1] then if a[1] < b[1] then return -1 else return 1 end end
  if a[2] ~= b[2] then if a[2] < b[2] then return -1 else return 1 end end
  return 0
end
local function num(s)
  if type(s) ~= 'string' or #s == 0 or #s > 20 or string.find(s, '^%d+$') == nil then
    return nil
  end
  local n = #s
  local x
  if n <= 9 then
    x = {0, tonumber(s)}
  else
    x = {tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))}
  end
  if cmp(x, MAX) > 0 then return nil end
  return x
end
local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= B then hi, lo = hi + 1, lo - B end
  local r = {hi, lo}
  if cmp(r, MAX) > 0 then return {MAX[1], MAX[2]} end
  return r
end
local function sub(a, b)
  if cmp(a, b) <= 0 then return {0, 0} end
  local hi, lo = a[1] - b[1], a[2] - b[2]
  if lo < 0 then hi, lo = hi - 1, lo + B end
  return {hi, lo}
end
local function str(a)
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d%09d', a[1], a[2])
end
local function ceil_ms(a)
  local ms = a[1] * 1000 + math.ceil(a[2] / 1000000)
  if ms < 1 then return 1 end
  return ms
end
"#;

/// One GCRA step, `caas_core::ratelimit::check` on the stored TAT.
///
/// KEYS[1]: the TAT. ARGV: now, T (the emission interval), the window (T times
/// the burst), and the slack in milliseconds added to the key's expiry.
/// Returns `{allowed (0|1), the TAT before ('' when none)}`; the caller derives
/// `remaining`, `reset_after` and `retry_after` from that TAT with the core's
/// own function, so they are the core's by construction.
const GCRA: &str = r#"
local now, t, window = num(ARGV[1]), num(ARGV[2]), num(ARGV[3])
if not now or not t or not window then return redis.error_reply('caas: bad GCRA arguments') end
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = num(stored)
  if not tat then return redis.error_reply('caas: corrupt GCRA state') end
  if cmp(tat, now) < 0 then tat = now end
end
local new_tat = add(tat, t)
if cmp(now, sub(new_tat, window)) < 0 then
  return {0, stored or ''}
end
redis.call('SET', KEYS[1], str(new_tat), 'PX', ceil_ms(sub(new_tat, now)) + tonumber(ARGV[4]))
return {1, stored or ''}
"#;

/// Sets (`set`) or clears (`clear`) one device's presence and returns the
/// user's aggregate before and after, as `MemoryPresenceStore` computes it.
///
/// KEYS[1]: the user's hash. ARGV: `set`|`clear`, now, the device's field,
/// its status rank, until, and the record's retention in milliseconds.
/// Returns `{rank before, rank after, last seen}`. Devices whose time has
/// passed, and fields this adapter did not write, are dropped.
const PRESENCE: &str = r#"
local now = num(ARGV[2])
if not now then return redis.error_reply('caas: bad presence arguments') end
local function best(fields, prune)
  local r = 0
  for i = 1, #fields, 2 do
    local f, v = fields[i], fields[i + 1]
    if string.sub(f, 1, 2) == 'd:' then
      local rank, until_s = string.match(v, '^([0-2]):(%d+)$')
      local u = until_s and num(until_s)
      if u and cmp(u, now) > 0 then
        local k = tonumber(rank)
        if k > r then r = k end
      elseif prune then
        redis.call('HDEL', KEYS[1], f)
      end
    elseif f ~= 'seen' and prune then
      redis.call('HDEL', KEYS[1], f)
    end
  end
  return r
end
local before = best(redis.call('HGETALL', KEYS[1]), false)
if ARGV[1] == 'set' then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4] .. ':' .. ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[3])
end
local seen = redis.call('HGET', KEYS[1], 'seen')
local s = seen and num(seen)
if not s or cmp(s, now) < 0 then
  seen = ARGV[2]
  redis.call('HSET', KEYS[1], 'seen', seen)
end
local after = best(redis.call('HGETALL', KEYS[1]), true)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {before, after, seen}
"#;

/// Records a revocation, keeping the later `until` of two.
///
/// KEYS[1]: the revocation. ARGV: until, and the expiry in milliseconds.
/// Returns 1 when stored, 0 when an equal or later one was there.
const REVOKE: &str = r#"
local u = num(ARGV[1])
if not u then return redis.error_reply('caas: bad revocation arguments') end
local cur = num(redis.call('GET', KEYS[1]))
if cur and cmp(cur, u) >= 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// Redis's own clock in milliseconds, for write leases: the one clock every
/// node's scripts agree on.
const CACHE_CLOCK: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

/// A cached read's check. KEYS: the version, the writers' leases. ARGV: a
/// fresh token (stored when there is none), the version's TTL in seconds.
/// Returns `{token, writes in progress}`.
const CACHE_READ: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms())
local busy = redis.call('ZCARD', KEYS[2])
local v = redis.call('GET', KEYS[1])
if not v then
  v = ARGV[1]
  redis.call('SET', KEYS[1], v, 'EX', ARGV[2])
end
return {v, busy}
"#;

/// A write begins. KEYS: the version, the writers' leases. ARGV: the writer's
/// id, its lease in milliseconds, a fresh token, the version's TTL in seconds.
const CACHE_BEGIN: &str = r#"
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now_ms() + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[2], lease)
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
return 1
"#;

/// A write ended (idempotent). KEYS: the version, the writers' leases. ARGV:
/// the writer's id, a fresh token, the version's TTL in seconds.
const CACHE_END: &str = r#"
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

pub(super) static GCRA_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(GCRA));
pub(super) static PRESENCE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PRESENCE));
pub(super) static REVOKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(REVOKE));
pub(super) static CACHE_READ_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{CACHE_CLOCK}{CACHE_READ}")));
pub(super) static CACHE_BEGIN_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{CACHE_CLOCK}{CACHE_BEGIN}")));
pub(super) static CACHE_END_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CACHE_END));
