-- A plugin that ticks until it is unloaded; its cleanup waits (a shielded
-- sleep), which the host lets finish before it reports the unload.
local plugin = {}

function plugin.main(host)
  local _cleanup <close> = setmetatable({}, { __close = function()
    corio.shield(corio.sleep, 0.02)
    host.log("cleaned up")
  end })
  local n = 0
  while true do
    n = n + 1
    if n <= 3 then host.log("tick %d", n) end
    corio.sleep(0.02)
  end
end

return plugin
