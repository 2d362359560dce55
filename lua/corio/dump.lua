-- corio.dump(): every live task with its name, state, what it waits on,
-- and its Lua stack.
local core = require "corio.core"

local function dump()
  local tasks = core.all_tasks()
  local out = { ("corio: %d task%s"):format(#tasks, #tasks == 1 and "" or "s") }
  for _, t in ipairs(tasks) do
    local id, state, what, co, owner = core.task_info(t)
    local line = ("- task %d %q: %s"):format(id, t:name(), state)
    if state == "waiting" then line = line .. " on " .. what end
    if owner then line = line .. (" (in the task group of task %d)"):format(owner) end
    out[#out + 1] = line
    if co then
      local tb = debug.traceback(co, nil, 0)
      for l in tb:gmatch("[^\n]+") do
        if not l:find("^stack traceback:") and not l:find("%[C%]: in %?$") then
          out[#out + 1] = "    " .. l:gsub("^%s+", "")
        end
      end
    end
  end
  return table.concat(out, "\n")
end

return dump
