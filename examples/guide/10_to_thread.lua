-- examples/guide/10_to_thread.lua: CPU-bound work on worker threads
local corio = require "corio"

-- fn runs in a Lua state of its own on a worker thread: it may not use
-- the caller's locals (pass them as arguments); results are copied back.
local function count_primes(from, to)
  local n = 0
  for i = math.max(from, 2), to do
    local prime = true
    for d = 2, math.floor(math.sqrt(i)) do
      if i % d == 0 then prime = false break end
    end
    if prime then n = n + 1 end
  end
  return n
end

-- While the workers compute, the loop stays free: this ticker keeps ticking.
local ticks = 0
local ticker = corio.spawn(function()
  while true do corio.sleep(0.001) ticks = ticks + 1 end
end)
local a, b = corio.gather(corio.spawn(corio.to_thread, count_primes, 1, 100000),
                          corio.spawn(corio.to_thread, count_primes, 100001, 200000))
ticker:cancel()
print("primes below 200000:", a + b)
print("the loop kept running:", ticks > 0)
-- expect: primes below 200000:	17984
-- expect: the loop kept running:	true
