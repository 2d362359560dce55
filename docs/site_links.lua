-- Run by `make docs` after LDoc: the markdown pages link to each other as
-- files (`reference.md#tasks`, `docs/guide.md`), as GitHub shows them. In
-- docs/site/ the pages are topics/NAME.md.html and LDoc names its own
-- anchors, so this rewrites every such link to the page and anchor LDoc
-- made; links to other files of the tree point back into the tree.
--
--   lua5.4 docs/site_links.lua docs/site
local site = assert(arg[1], "usage: lua5.4 docs/site_links.lua SITE_DIR")
local topics = site .. "/topics/"

local function slug(text)  -- the anchor GitHub gives a heading
  text = text:gsub("<[^>]*>", ""):gsub("&lt;", "<"):gsub("&gt;", ">")
    :gsub("&amp;", "&"):gsub("&quot;", '"'):gsub("&#?%w+;", ""):lower()
  return (text:gsub("[^%w%-_ ]", ""):gsub(" ", "-"))
end

local pages, anchors = {}, {}
local ls = assert(io.popen("ls " .. topics))
for name in ls:lines() do
  if name:match("%.md%.html$") then
    local f = assert(io.open(topics .. name))
    local html = f:read("a")
    f:close()
    local map = {}
    for a, text in html:gmatch('<a name="([^"]+)"></a></p>%s*<h%d>(.-)</h%d>') do
      map[slug(text)] = a
    end
    -- LDoc anchors only some headings: give the others GitHub's anchor
    html = html:gsub("(<h([2-6])>(.-)</h%2>)", function(whole, _, text)
      local id = slug(text)
      if map[id] then return nil end
      map[id] = id
      return '<a name="' .. id .. '"></a>' .. whole
    end)
    pages[name] = html
    anchors[name:gsub("%.html$", "")] = map
  end
end
ls:close()

for name, html in pairs(pages) do
  local self = name:gsub("%.html$", "")
  local root = self == "README.md" and "../../../" or "../../"
  html = html:gsub('href="([^"]*)"', function(url)
    if url:match("^%a+:") or url:match("^%.%./topics/") or url:match("^%.%./index")
        or url:match("^%.%./ldoc") then
      return nil
    end
    local file, anchor = url:match("^([^#]*)#?(.*)$")
    local page = file == "" and self or file:match("([^/]+%.md)$")
    if page and anchors[page] then
      local target = page == self and "" or "../topics/" .. page .. ".html"
      if anchor ~= "" then
        target = target .. "#" .. (anchors[page][anchor] or anchor)
      end
      return 'href="' .. target .. '"'
    end
    return 'href="' .. root .. url .. '"'
  end)
  local f = assert(io.open(topics .. name, "w"))
  f:write(html)
  f:close()
end

-- The front page is the README.
local index = assert(io.open(site .. "/index.html", "w"))
index:write('<!DOCTYPE html>\n<html><head><meta charset="utf-8">',
  '<meta http-equiv="refresh" content="0; url=topics/README.md.html">',
  '<title>corio documentation</title></head>\n<body><p><a href="topics/README.md.html">',
  'corio documentation</a></p></body></html>\n')
index:close()
