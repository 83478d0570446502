-- tables.lua: table-heavy Lua (records, arrays that grow, string keys, closures), for comparing cprof's heap
-- totals with heaptrack's on the same program (scripts/bench_heap.py)
local rounds = tonumber(arg and arg[1]) or 40
local kept = {}
for round = 1, rounds do
  local people = {}
  for i = 1, 2000 do
    people[i] = {name = "person" .. i, age = i % 90, tags = {"a" .. (i % 7), "b" .. (i % 11)}}
  end
  local by_name = {}
  for _, person in ipairs(people) do by_name[person.name] = person end
  local counts = setmetatable({}, {__index = function() return 0 end})
  for _, person in ipairs(people) do
    for _, tag in ipairs(person.tags) do counts[tag] = counts[tag] + 1 end
  end
  local parts = {}
  for tag, count in pairs(counts) do parts[#parts + 1] = tag .. "=" .. count end
  table.sort(parts)
  kept[round % 5 + 1] = {summary = table.concat(parts, ","), index = by_name}
end
print(#kept, kept[1].summary:sub(1, 20))
