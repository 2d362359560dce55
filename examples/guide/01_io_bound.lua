-- examples/guide/01_io_bound.lua: ten "requests", in sequence and at once
local corio = require "corio"

local function request(i, delay)
  corio.sleep(delay)                    -- stands for waiting on the network
  return i
end

local delays = {}
for i = 1, 10 do delays[i] = 0.02 + 0.18 * ((i * 7) % 10) / 10 end

local t0 = corio.now()
for i = 1, 10 do request(i, delays[i]) end        -- one after another
local sequential = corio.now() - t0

t0 = corio.now()
local tasks = {}
for i = 1, 10 do tasks[i] = corio.spawn(request, i, delays[i]) end
for _, t in ipairs(tasks) do t:await() end        -- all waiting at once
local concurrent = corio.now() - t0

print(("sequential: %.2f s, concurrent: %.2f s"):format(sequential, concurrent))
print("concurrent is faster:", concurrent < sequential / 2)
-- expect: concurrent is faster:	true
