-- cpu_bound.lua — a CPU-bound Lua script for the accuracy benchmark: table work, string work, closures, pcall.
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local t = {}
for i = 1, 200000 do t[i] = (i * 7919) % 100003 end
table.sort(t)
local parts = {}
for i = 1, 20000 do parts[#parts + 1] = string.format("%d:%s", i, tostring(t[i])) end
local s = table.concat(parts, ",")
local count = 0
for _ in s:gmatch("%d+") do count = count + 1 end
local ok = 0
for i = 1, 20000 do if pcall(function() if i % 3 == 0 then error("x") end return i end) then ok = ok + 1 end end
print(fib(24), #s, count, ok)
