-- A plugin that awaits the host's asynchronous function (a worker thread
-- computes, corio_post delivers), runs tasks side by side, and has one
-- task fail: the host's error hook names the plugin.
local plugin = {}

function plugin.main(host)
  local tasks = {}
  for i = 1, 3 do
    tasks[i] = corio.spawn(function() return host.work(i + 4):await() end)
  end
  for i, t in ipairs(tasks) do host.log("square(%d) = %d", i + 4, t:await()) end
  corio.spawn(function() error("squares gave up", 0) end)
  corio.sleep(1e6)  -- stays loaded until unloaded
end

return plugin
