-- corio.dump(): every live task with its name, state, what it waits on,
-- and its Lua stack.
local core = require "corio.core"

-- corio's own Lua files live next to this one: their frames (and the C
-- calls they make, and the tail calls between them) are hidden from the
-- stacks unless CORIO_DEBUG=1 or corio.debug(true)
local own_dir = debug.getinfo(1, "S").short_src:match("^(.*[/\\])[^/\\]*$") or "\0"

local function user_frames(tb, out)
  local lines = {}
  for l in tb:gmatch("[^\n]+") do
    if not l:find("^stack traceback:") and not l:find("%[C%]: in %?$") then
      lines[#lines + 1] = l:gsub("^%s+", "")
    end
  end
  local show_all = core.debug()
  local function ours(i)
    local l = lines[i]
    return l ~= nil and l:sub(1, #own_dir) == own_dir
  end
  for i, l in ipairs(lines) do
    local hide = not show_all and (ours(i)
      or (l:find("^%[C%]") and ours(i + 1))
      or (l == "(...tail calls...)" and (ours(i - 1) or ours(i + 1))))
    if not hide then out[#out + 1] = "    " .. l end
  end
end

local function dump()
  local tasks = core.all_tasks()
  local out = { ("corio: %d task%s"):format(#tasks, #tasks == 1 and "" or "s") }
  for _, t in ipairs(tasks) do
    local id, state, what, co, owner = core.task_info(t)
    local line = ("- task %d %q: %s"):format(id, t:name(), state)
    if state == "waiting" then line = line .. " on " .. what end
    if owner then line = line .. (" (in the task group of task %d)"):format(owner) end
    out[#out + 1] = line
    if co then user_frames(debug.traceback(co, nil, 0), out) end
  end
  return table.concat(out, "\n")
end

return dump
