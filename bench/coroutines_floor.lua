-- The memory floor for W2: N bare Lua coroutines, each created and resumed once into a
-- coroutine.yield, all kept in a list: what a suspended task costs with no scheduler,
-- timer or task object at all. bench/run.sh reports its peak RSS as row
-- "lua-coroutines" beside corio's W2 (target: corio peak RSS <= 1.20 x this). Row
-- "lua-coroutines-corio-alloc" runs it under `lua5.4 -l corio.core`: the same coroutines
-- on corio's allocator (docs/reference.md, "Memory"), which corio's W2 runs on.
--
-- usage: lua5.4 bench/coroutines_floor.lua [N]    (N = 0 gives the interpreter's baseline)
-- Prints "RESULT workload=w2 n=N secs=S" like the peers. Plain Lua has no monotonic
-- wall clock, so secs is CPU time (os.clock); the process never blocks, so it is close.
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local n = math.tointeger(tonumber(arg[1]) or 1000000)
local function body() yield(); return 1 end

local t0 = os.clock()
local cos = {}
for i = 1, n do
  local co = create(body)
  resume(co)            -- runs to the yield: the coroutine now holds a suspended frame
  cos[i] = co
end
local done = 0          -- wake them all, as W2's sleepers are woken, and count
for i = 1, n do
  local _, v = resume(cos[i])
  done = done + v
end
local secs = os.clock() - t0
assert(done == n, "not every coroutine finished")
io.write(("RESULT workload=w2 n=%d secs=%.4f\n"):format(n, secs))
