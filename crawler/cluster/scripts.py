"""The Lua scripts the cluster runs in Redis for the politeness gate and the shared queue.

Each is one atomic call (:func:`crawler.cluster.connection.named_script` loads it under a
name for the round-trip counts); the Python side that calls them is
:class:`crawler.cluster.gate.OriginGate` (:data:`ACQUIRE_SCRIPT`, :data:`RELEASE_SCRIPT`,
:data:`DEFER_SCRIPT`, :data:`REREGISTER_SCRIPT`: the per-origin gate, its design in
:mod:`crawler.cluster.politeness`) and :class:`crawler.cluster.queue.InflightPriorityQueue`
(:data:`POP_SCRIPT`, :data:`PUSH_SCRIPT`, :data:`PUSH_UNSEEN_SCRIPT`, :data:`STEP_SCRIPT`:
the shared request queue, its design in :mod:`crawler.cluster.scheduler`). The step script
runs the gate's own grant and release functions (:data:`ACQUIRE_FN`, :data:`RELEASE_FN`), so a
batched round trip checks exactly what a grant alone does. The job-state and liveness
functions they share (``job_state``, ``is_alive``) come from :mod:`crawler.cluster.state`.
"""

from __future__ import annotations

from crawler.cluster.state import LIVENESS, NOW, NUM, STATE

# -- the politeness gate ------------------------------------------------------------------

# The origin hash: token / worker / lease_until (the lease), ref (when spacing counts from:
# the last grant, or its response once released), ref_delay (the delay that grant recorded),
# defer_until (Retry-After), granted_at (for the record), held (how long the last lease was
# held, grant to release: the waits answered while a lease is held count on as long), next /
# next_at (the origin's next turn: the token last told to wait only for the delay, and when it
# comes back; until a poll interval after that, another token is not granted but told to come
# after that turn, so two workers do not race for the same moment and one of them retry).
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Every field read from the hash is validated before it is used (fail closed): a number,
# finite, within a sane range (times within +-10 years of Redis TIME, delays 0..1 day), and
# present when its companion is (token / worker / lease_until together; ref with ref_delay;
# next with next_at; held, a hint, a delay too).
# An invalid hash is never a grant nor a skipped delay: the script answers "wait" with the
# reason, and gives the hash a TTL if it has none (as if a request had just been granted), so
# it heals by expiring; it is not otherwise modified (an existing TTL is never shortened).
_CHECKS = """
local TEN_YEARS = 315576000000
local DAY = 86400000
local function num(v)
  local x = tonumber(v)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then return nil end
  return x
end
local function bad(field, v)
  local shown = tostring(v)
  if v == false or v == nil then shown = '(missing)' end
  if #shown > 40 then shown = string.sub(shown, 1, 40) .. '...' end
  return field .. '=' .. shown
end
local function time_field(field, v)
  local x = num(v)
  if x == nil or math.abs(x - now) > TEN_YEARS then return nil, bad(field, v) end
  return x
end
local function delay_field(field, v)
  local x = num(v)
  if x == nil or x < 0 or x > DAY then return nil, bad(field, v) end
  return x
end
"""

# KEYS: origin hash, job epoch, beats, clock, this worker's in-flight hash.
# ARGV: token, worker, delay ms, lease ms, poll ms, alive-key prefix, epoch id, heartbeat gap
#       ms, in-flight id of the request ('' = not from the shared queue), "1" when the delay
#       counts from the response (then a lease another worker holds means at least a full
#       delay from now: the holder releases it no earlier than now, and the delay runs from
#       its release; the wait answered adds as long as the holder has had it so far, an
#       estimate of its download's remaining time, so that the next ask finds it released
#       and its delay run rather than costing one more round trip), ms ahead (optional, ''
#       or 0: never): when nothing but the delay stands in the way and it ends within this
#       many ms, the lease is granted now for a send at its end (answer {1, start_ms,
#       wait_ms, 'ahead'}: the caller sends no sooner than wait_ms after the answer; the lease
#       runs from then, the spacing counts from then), instead of "wait" and one more round
#       trip.
# Returns {1, now_ms} (granted), {1, start_ms, wait_ms, 'ahead'} (granted for a send wait_ms
# from now), {0, wait_ms} or {0, wait_ms, reason} (the hash is invalid), or
# {'!', code, detail}: the job's state is not trusted (state.py), or 'fenced': the request's
# in-flight entry is gone (re-queued while this worker looked dead: not to be sent here).
#: ``acquire_origin(K, A)``: the grant, with ACQUIRE_SCRIPT's KEYS as ``K`` and ARGV as
#: ``A`` (also run by the scheduler's step script when a worker batches its round trips).
#: Needs _NOW, _CHECKS, STATE and LIVENESS.
ACQUIRE_FN = """
local function acquire_origin(K, A)
  local code, detail = job_state(K[2], A[7])
  if code then return {'!', code, detail} end
  if A[9] ~= '' and redis.call('HEXISTS', K[5], A[9]) == 0 then
    return {'!', 'fenced', A[9]}
  end
  local f = redis.call('HMGET', K[1], 'token', 'worker', 'lease_until', 'ref', 'ref_delay',
                       'defer_until', 'held', 'next', 'next_at')
  local delay = tonumber(A[3])
  local lease = tonumber(A[4])
  local poll = tonumber(A[5])
  local function invalid(reason)
    -- a hash without a TTL (not written by these scripts) gets the one a grant would set (or
    -- a valid deferral's, if longer); a TTL it has is never shortened
    if redis.call('PTTL', K[1]) == -1 then
      local ttl = math.max(lease, delay)
      local defer_until = time_field('defer_until', f[6])
      if defer_until ~= nil then ttl = math.max(ttl, defer_until - now) end
      redis.call('PEXPIRE', K[1], math.floor(ttl) + 60000)
    end
    return {0, math.max(poll, 1000), reason}
  end
  -- the lease: token, worker and lease_until together, or none of them
  local lease_until = 0
  if f[1] or f[2] or f[3] then
    if not f[1] or f[1] == '' then return invalid(bad('token', f[1])) end
    if not f[2] or f[2] == '' then return invalid(bad('worker', f[2])) end
    local x, why = time_field('lease_until', f[3])
    if x == nil then return invalid(why) end
    lease_until = x
  end
  local allowed = 0
  local ref_at = now
  local ref_delay = 0
  if f[4] or f[5] then
    local ref, why = time_field('ref', f[4])
    if ref == nil then return invalid(why) end
    ref_at = ref
    local rd, why2 = delay_field('ref_delay', f[5])
    if rd == nil then return invalid(why2) end
    ref_delay = rd
    -- the previous request's delay, or this one's if larger (a Crawl-delay just learnt)
    allowed = ref + math.max(ref_delay, delay)
  end
  if f[6] then
    local defer_until, why = time_field('defer_until', f[6])
    if defer_until == nil then return invalid(why) end
    allowed = math.max(allowed, defer_until)
  end
  -- how long the origin's last lease was held, grant to release (a hint for the waits)
  local last_held = nil
  if f[7] then
    local x, why = delay_field('held', f[7])
    if x == nil then return invalid(why) end
    last_held = x
  end
  -- the origin's next turn, booked by the token that was told to come back at next_at
  local next_at = nil
  if f[8] or f[9] then
    if not f[8] or f[8] == '' then return invalid(bad('next', f[8])) end
    local x, why = time_field('next_at', f[9])
    if x == nil then return invalid(why) end
    next_at = x
  end
  local booked = next_at ~= nil and f[8] ~= A[1] and now <= next_at + poll
  local ahead = tonumber(A[11]) or 0
  local held = false
  if f[1] and f[1] ~= A[1] and lease_until > now then
    -- a lease is void once its holder is dead: no beat for its TTL while Redis answered others
    held = is_alive(f[2], K[3], K[4], A[6], tonumber(A[8]))
  end
  local start = now
  if not held and not booked and now < allowed and allowed - now <= ahead then
    start = allowed   -- granted now for a send at the end of the delay
  end
  if held or start < allowed or booked then
    local wait = allowed - now
    local step = math.max(ref_delay, delay)
    if held then
      wait = math.max(wait, math.min(poll, lease_until - now))
      if A[10] == '1' then
        -- the holder's request has been on the wire for now - ref (its grant): expect it to
        -- need as long again, or what the origin's last lease took if longer, then the
        -- delay from its answer
        local busy = math.max(0, now - ref_at)
        local left = busy
        if last_held ~= nil then left = math.max(busy, last_held - busy) end
        wait = math.max(wait, math.min(step + left, lease_until - now))
      end
    end
    if booked then
      -- another token has the next turn at next_at: after its lease and delay
      wait = math.max(wait, next_at - now + (last_held or poll) + step)
    elseif not held then
      -- only the delay stands in the way: the wait is exact; the turn at its end is this
      -- token's (another asking meanwhile is told to come after it, not at the same time)
      redis.call('HSET', K[1], 'next', A[1], 'next_at', now + wait)
    end
    return {0, math.max(wait, 1)}
  end
  if next_at ~= nil then redis.call('HDEL', K[1], 'next', 'next_at') end
  redis.call('HSET', K[1], 'token', A[1], 'worker', A[2], 'lease_until', start + lease,
             'ref', start, 'ref_delay', delay, 'granted_at', start)
  redis.call('PEXPIRE', K[1], math.max(start - now + lease, delay) + 60000)
  if start > now then return {1, start, start - now, 'ahead'} end
  return {1, now}
end
"""
ACQUIRE_SCRIPT = _NOW + _CHECKS + STATE + LIVENESS + ACQUIRE_FN + """
return acquire_origin(KEYS, ARGV)
"""

# KEYS[1] origin hash. ARGV: token, "1" to count the spacing from now (the response).
# Returns 1 when the lease was this token's. An invalid ref_delay leaves the TTL alone (the
# acquire script fails closed on it).
#: ``release(key, token, from_now)``: the function RELEASE_SCRIPT runs, also run by the
#: scheduler's step script for the releases a worker batches (STEP_SCRIPT). Needs _CHECKS.
RELEASE_FN = """
local function release(key, token, from_now)
  if redis.call('HGET', key, 'token') ~= token then
    return 0
  end
  redis.call('HDEL', key, 'token', 'worker', 'lease_until')
  -- how long the lease was held (the waits the gate answers others estimate from it)
  local g = time_field('granted_at', redis.call('HGET', key, 'granted_at'))
  if g ~= nil then redis.call('HSET', key, 'held', math.min(DAY, math.max(0, now - g))) end
  if from_now == '1' then
    redis.call('HSET', key, 'ref', now)
    local d = delay_field('ref_delay', redis.call('HGET', key, 'ref_delay'))
    if d ~= nil then
      redis.call('PEXPIRE', key, d + 60000)
    end
  end
  return 1
end
"""
RELEASE_SCRIPT = _NOW + _CHECKS + RELEASE_FN + """
return release(KEYS[1], ARGV[1], ARGV[2])
"""

# KEYS[1] origin hash. ARGV: wait ms. Nothing is granted before now + wait. An invalid
# defer_until is replaced (a valid deferral is a constraint; the invalid one meant nothing).
DEFER_SCRIPT = _NOW + _CHECKS + """
local until_ms = now + tonumber(ARGV[1])
local cur = time_field('defer_until', redis.call('HGET', KEYS[1], 'defer_until'))
if cur == nil or until_ms > cur then
  redis.call('HSET', KEYS[1], 'defer_until', until_ms)
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) + 60000 then
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 60000)
  end
end
return until_ms
"""

# KEYS: job epoch. ARGV: epoch id, worker, origin-key prefix, number of leases, then per lease
# origin / token / lease ms left / delay ms, then per origin answered just now origin / delay
# ms. A worker adopting a restored epoch re-registers the leases of its requests on the wire
# (unless a later lease of another token is there) and restarts the spacing of the origins it
# was just answered by: their next request waits a full delay from now. Returns the number of
# leases registered.
REREGISTER_SCRIPT = _NOW + _CHECKS + STATE + """
local code, detail = job_state(KEYS[1], ARGV[1])
if code and code ~= 'hold' then return {'!', code, detail} end
local function keep_ttl(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local i = 5
local done = 0
for _ = 1, tonumber(ARGV[4]) do
  local key = ARGV[3] .. ARGV[i]
  local token, lease, delay = ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local cur = redis.call('HMGET', key, 'token', 'lease_until', 'ref_delay')
  local cur_until = time_field('lease_until', cur[2])
  if not (cur[1] and cur[1] ~= token and cur_until ~= nil and cur_until > now + lease) then
    local rd = math.max(delay_field('ref_delay', cur[3]) or 0, delay)
    redis.call('HSET', key, 'token', token, 'worker', ARGV[2], 'lease_until', now + lease,
               'ref', now, 'ref_delay', rd, 'granted_at', now)
    keep_ttl(key, math.max(lease, rd) + 60000)
    done = done + 1
  end
  i = i + 4
end
while i < #ARGV do
  local key, delay = ARGV[3] .. ARGV[i], tonumber(ARGV[i + 1])
  local cur = redis.call('HMGET', key, 'ref', 'ref_delay')
  local ref = time_field('ref', cur[1])
  if ref == nil or ref < now then
    local rd = math.max(delay_field('ref_delay', cur[2]) or 0, delay)
    redis.call('HSET', key, 'ref', now, 'ref_delay', rd)
    keep_ttl(key, rd + 60000)
  end
  i = i + 2
end
return done
"""

# -- the shared request queue ------------------------------------------------------------

# KEYS: queue (sorted set), in-flight hash, id counter, epoch. ARGV: epoch id.
# Returns {id, encoded request}, nil, or {'!', code, detail} (nothing popped: the job's state
# is not trusted, or a restored epoch is in its hold).
POP_SCRIPT = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[4], ARGV[1])
if code then return {'!', code, detail} end
local r = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #r == 0 then return false end
redis.call('ZREM', KEYS[1], r[1])
local id = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[2], id, r[2] .. ':' .. r[1])
return {id, r[1]}
"""


# KEYS: queue, per-origin counters, epoch. ARGV: priority, origin, encoded request, epoch id.
# A push is taken during a restored epoch's hold (only grants and pops wait for it).
PUSH_SCRIPT = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[3], ARGV[4])
if code and code ~= 'hold' then return {'!', code, detail} end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('ZADD', KEYS[1], -tonumber(ARGV[1]) * 1e9 + (n % 1e9), ARGV[3])
return n
"""


# KEYS: queue, per-origin counters, duplicate filter set, epoch. ARGV: priority, origin,
# encoded request, fingerprint, epoch id. Returns 1 when queued, 0 when the fingerprint was
# seen already.
PUSH_UNSEEN_SCRIPT = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[4], ARGV[5])
if code and code ~= 'hold' then return {'!', code, detail} end
if redis.call('SADD', KEYS[3], ARGV[4]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('ZADD', KEYS[1], -tonumber(ARGV[1]) * 1e9 + (n % 1e9), ARGV[3])
return 1
"""


# One round trip per page: the releases and the links a worker has batched since its last
# call, then (optionally) a grant of one origin (the politeness gate's own function, its epoch
# and fencing checks included), then (optionally) pops, each part under its own epoch check.
# KEYS: queue, in-flight hash, id counter, epoch, per-origin counters, duplicate filter, origin
#       hash to grant (any key when no grant is asked), beats, clock.
# ARGV: 1 epoch id, 2 how many requests to pop (0: none), 3 origin-key prefix, 4 "1" when a
#       release restarts the spacing (the response), 5 number of releases, 6 "1" to grant,
#       7-17 the grant's ARGV (ACQUIRE_SCRIPT's; placeholders when no grant is asked), then
#       per release origin / token, then per link priority / origin / encoded request /
#       fingerprint ('' = not filtered).
# Returns {released, pushed, popped, granted}: released a string of '1' / '0' per release (the
# lease was this token's); pushed a string of '1' (queued) / '0' (seen before) per link, or
# {'!', code, detail} when the job's state refuses pushes (nothing pushed: the caller pushes
# them one by one, spooling what Redis cannot take); popped {id, encoded request, ...} for
# each request popped (each moved to the in-flight hash, as POP_SCRIPT does), or {'!', code,
# detail}, or false when none was asked; granted as
# ACQUIRE_SCRIPT's (false when not asked). Releases are done whatever the job's state, as
# RELEASE_SCRIPT does.
STEP_SCRIPT = NOW + _CHECKS + STATE + LIVENESS + RELEASE_FN + ACQUIRE_FN + """
local released = {}
local i = 18
for _ = 1, tonumber(ARGV[5]) do
  released[#released + 1] = tostring(release(ARGV[3] .. ARGV[i], ARGV[i + 1], ARGV[4]))
  i = i + 2
end
local code, detail = job_state(KEYS[4], ARGV[1])
local pushed
if i <= #ARGV and code and code ~= 'hold' then
  pushed = {'!', code, detail}
else
  local out = {}
  while i <= #ARGV do
    local fp = ARGV[i + 3]
    if fp ~= '' and redis.call('SADD', KEYS[6], fp) == 0 then
      out[#out + 1] = '0'
    else
      local c = redis.call('HINCRBY', KEYS[5], ARGV[i + 1], 1)
      redis.call('ZADD', KEYS[1], -tonumber(ARGV[i]) * 1e9 + (c % 1e9), ARGV[i + 2])
      out[#out + 1] = '1'
    end
    i = i + 4
  end
  pushed = table.concat(out)
end
local granted = false
if ARGV[6] == '1' then
  granted = acquire_origin({KEYS[7], KEYS[4], KEYS[8], KEYS[9], KEYS[2]},
                           {unpack(ARGV, 7, 17)})
end
local popped = false
local want = tonumber(ARGV[2])
if want > 0 then
  if code then
    popped = {'!', code, detail}
  else
    popped = {}
    local r = redis.call('ZRANGE', KEYS[1], 0, want - 1, 'WITHSCORES')
    for j = 1, #r, 2 do
      redis.call('ZREM', KEYS[1], r[j])
      local id = tostring(redis.call('INCR', KEYS[3]))
      redis.call('HSET', KEYS[2], id, r[j + 1] .. ':' .. r[j])
      popped[#popped + 1] = id
      popped[#popped + 1] = r[j]
    end
  end
end
return {table.concat(released), pushed, popped, granted}
"""
