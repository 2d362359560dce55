-- LuaSocket's socket.smtp (over socket.tp) on corio.socket.install():
-- mails sent by 10 tasks at once to a small corio SMTP server.
local corio = require "corio"
local helper = require "helper"
local socket = corio.socket

local have_smtp = package.searchpath("socket.smtp", package.path) ~= nil
  and package.searchpath("mime", package.path) ~= nil
local describe_smtp = have_smtp and describe or pending

-- a server that takes every mail and keeps {from, to, data} in inbox
local function smtp_server(inbox)
  local srv = assert(corio.serve("127.0.0.1", 0, function(s)
    s:write("220 corio test server\r\n")
    local mail = { to = {} }
    for line in s:lines() do
      local verb = line:match("^(%a+)"):upper()
      if verb == "EHLO" or verb == "HELO" then
        s:write("250-corio\r\n250 OK\r\n")
      elseif verb == "MAIL" then
        mail.from = line:match("<(.-)>")
        s:write("250 OK\r\n")
      elseif verb == "RCPT" then
        mail.to[#mail.to + 1] = line:match("<(.-)>")
        s:write("250 OK\r\n")
      elseif verb == "DATA" then
        s:write("354 go on\r\n")
        local body = {}
        for l in s:lines() do
          if l == "." then break end
          body[#body + 1] = l
        end
        mail.data = table.concat(body, "\n")
        inbox[#inbox + 1] = mail
        mail = { to = {} }
        s:write("250 queued\r\n")
      elseif verb == "QUIT" then
        s:write("221 bye\r\n")
        break
      else
        s:write("502 what\r\n")
      end
    end
  end))
  local _, port = srv:address()
  return srv, port
end

describe_smtp("socket.smtp on corio.socket", function()
  after_each(function() socket.uninstall() end)

  it("sends mails from 10 tasks at once", function()
    socket.install()
    local smtp = require "socket.smtp"
    helper.run(function()
      local inbox = {}
      local srv, port = smtp_server(inbox)
      local fns = {}
      for i = 1, 10 do
        fns[i] = function()
          return smtp.send {
            from = "<sender@example.org>",
            rcpt = { "<to" .. i .. "@example.org>" },
            source = smtp.message { headers = { subject = "mail " .. i }, body = "body of mail " .. i },
            server = "127.0.0.1", port = port,
          }
        end
      end
      local results = corio.gather(fns)
      for i = 1, 10 do assert.equals(1, results[i]) end
      assert.equals(10, #inbox)
      local seen = {}
      for _, mail in ipairs(inbox) do
        assert.equals("sender@example.org", mail.from)
        local n = mail.to[1]:match("^to(%d+)@")
        assert.matches("Subject: mail " .. n, mail.data)
        assert.matches("body of mail " .. n, mail.data)
        seen[tonumber(n)] = true
      end
      for i = 1, 10 do assert.is_true(seen[i]) end
      srv:close()
    end)
  end)
end)
