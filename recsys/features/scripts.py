"""The Lua scripts of the feature store. Each touches the keys of ONE entity (one hash tag, one cluster slot).

Every write script first adds the event's marker to the entity's dedupe set (SADD returns 0 when it is already
there: the event was applied to this entity before) and then applies all of the entity's updates; Redis runs a
script atomically, so the marker and the updates are written together or not at all. Scripts check nothing that
could fail after their first write (the arguments were validated in Python), because Redis does not roll a
failed script back.
"""

from __future__ import annotations

from recsys.store import Script

# KEYS: dedupe set, record. ARGV: marker, ttl_s, record size, event second, n_totals, (index, increment) * n_totals,
# n_rings, then per ring: head index, first slot index, buckets N, bucket seconds, n_kinds, one increment per kind.
# Indexes are uint32 positions in the record. The event's bucket b goes to slot b mod N. Against the head's bucket
# h: b > h moves the head, zeroing the slots of the buckets it skips and b's own (they held buckets older than the
# ring); h - N < b <= h adds (late and out-of-order events); b <= h - N is older than the ring: skipped. The
# result is the same in any order of events: the N buckets up to the newest event's, each with its own events.
# A record is created whole, zero-filled: the reader decodes all records with one join, and a string grown by
# BITFIELD/SETRANGE would keep twice its size allocated.
COUNTERS = Script("""
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], string.rep('\\0', tonumber(ARGV[3]))) end
local second = tonumber(ARGV[4])
local ops = {'OVERFLOW', 'SAT'}
local function put(op, index, value)
  ops[#ops + 1] = op; ops[#ops + 1] = 'u32'; ops[#ops + 1] = '#' .. index; ops[#ops + 1] = value
end
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  put('INCRBY', ARGV[i], ARGV[i + 1])
  i = i + 2
end
local rings = tonumber(ARGV[i])
i = i + 1
if rings > 0 then
  local reads, starts = {}, {}
  for r = 1, rings do
    starts[r] = i
    reads[#reads + 1] = 'GET'; reads[#reads + 1] = 'u32'; reads[#reads + 1] = '#' .. ARGV[i]
    i = i + 5 + tonumber(ARGV[i + 4])
  end
  local heads = redis.call('BITFIELD_RO', KEYS[2], unpack(reads))
  for r = 1, rings do
    local j = starts[r]
    local head = heads[r]
    local first, n, width, kinds = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3]),
      tonumber(ARGV[j + 4])
    local bucket, newest = math.floor(second / width), math.floor(head / width)
    if bucket > newest - n then
      if head > 0 and bucket > newest then
        local count = math.min(bucket - newest, n)
        local position = (bucket - count + 1) % n
        while count > 0 do
          local run = math.min(count, n - position)
          redis.call('SETRANGE', KEYS[2], (first + position * kinds) * 4, string.rep('\\0', run * kinds * 4))
          count = count - run
          position = 0
        end
      end
      if second > head then put('SET', ARGV[j], ARGV[4]) end
      local slot = first + (bucket % n) * kinds
      for c = 1, kinds do
        local increment = ARGV[j + 4 + c]
        if increment ~= '0' then put('INCRBY', slot + c - 1, increment) end
      end
    end
  end
end
if #ops > 2 then redis.call('BITFIELD', KEYS[2], unpack(ops)) end
return 1
""")

# KEYS: dedupe set, counts hash, recent-items hash, affinity hash.
# ARGV: marker, ttl_s, event type, counted ('1' or '0'), item id ('' for none), recent entry, recent kept,
# recent trim threshold, affinity kept, affinity trim threshold, then (field, term) pairs.
# A recent entry is "second|type|seconds|progress"; per item the newest entry wins (ties: the greater string), so
# the result does not depend on arrival order. Affinity fields hold log2 of sum(w * 2^((t - T_REF) / half_life)):
# adding an event is a log-add-exp, whatever the order. Trimming keeps the newest items / strongest affinities.
USER = Script("""
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'type:' .. ARGV[3], 1)
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[2], 'events', 1) end
local function trim(key, keep, before)
  local flat = redis.call('HGETALL', key)
  local entries = {}
  for k = 1, #flat, 2 do entries[#entries + 1] = {flat[k], flat[k + 1]} end
  table.sort(entries, before)
  for k = keep + 1, #entries do redis.call('HDEL', key, entries[k][1]) end
end
local function entry_second(entry) return tonumber(string.match(entry, '^[^|]*')) end
if ARGV[5] ~= '' then
  local entry = ARGV[6]
  local current = redis.call('HGET', KEYS[3], ARGV[5])
  local newer = not current
  if current then
    local s, c = entry_second(entry), entry_second(current)
    newer = s > c or (s == c and entry > current)
  end
  if newer then redis.call('HSET', KEYS[3], ARGV[5], entry) end
  if redis.call('HLEN', KEYS[3]) > tonumber(ARGV[8]) then
    trim(KEYS[3], tonumber(ARGV[7]), function(a, b)
      local sa, sb = entry_second(a[2]), entry_second(b[2])
      if sa ~= sb then return sa > sb end
      return a[1] < b[1]
    end)
  end
end
if #ARGV > 10 then
  local fields, terms = {}, {}
  for k = 11, #ARGV, 2 do fields[#fields + 1] = ARGV[k]; terms[#terms + 1] = tonumber(ARGV[k + 1]) end
  local current = redis.call('HMGET', KEYS[4], unpack(fields))
  local updates = {}
  for k = 1, #fields do
    local value = terms[k]
    if current[k] then
      local a, b = tonumber(current[k]), terms[k]
      local high, low = math.max(a, b), math.min(a, b)
      value = high + math.log(1 + 2 ^ (low - high)) / math.log(2)
    end
    updates[#updates + 1] = fields[k]; updates[#updates + 1] = string.format('%.12g', value)
  end
  redis.call('HSET', KEYS[4], unpack(updates))
  if redis.call('HLEN', KEYS[4]) > tonumber(ARGV[10]) then
    trim(KEYS[4], tonumber(ARGV[9]), function(a, b)
      local va, vb = tonumber(a[2]), tonumber(b[2])
      if va ~= vb then return va > vb end
      return a[1] < b[1]
    end)
  end
end
return 1
""")

# KEYS: metadata hash, record. ARGV: catalog section bytes, record size, then (column, value) pairs.
# Replaces the metadata; the record keeps its counters (it is created whole, as in COUNTERS).
CATALOG_ITEM = Script("""
redis.call('DEL', KEYS[1])
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], string.rep('\\0', tonumber(ARGV[2]))) end
redis.call('SETRANGE', KEYS[2], 0, ARGV[1])
return 1
""")

# KEYS: profile hash. ARGV: (column, value) pairs. Replaces the profile.
REPLACE_HASH = Script("""
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 1
""")
