-- corio.net: the public networking functions (TCP for now), taken from
-- corio.core; init.lua copies them into the corio module.
local core = require "corio.core"

local net = {}

net.connect = core.connect  -- corio.connect(host, port [, opts]) (suspends) -> Stream
net.serve = core.serve      -- corio.serve(host, port, handler [, opts]) -> Server
net.connect_unix = core.connect_unix  -- corio.connect_unix(path [, opts]) (suspends) -> Stream
net.serve_unix = core.serve_unix      -- corio.serve_unix(path, handler [, opts]) -> Server
net.stdin = core.stdin      -- corio.stdin() -> Stream on fd 0 (stdout, stderr: fd 1, 2)
net.stdout = core.stdout
net.stderr = core.stderr
net.udp = core.udp          -- corio.udp([opts]) -> UDP socket
net.getaddrinfo = core.getaddrinfo  -- corio.getaddrinfo(host [, port [, opts]]) (suspends) -> list
net.getnameinfo = core.getnameinfo  -- corio.getnameinfo(host, port [, opts]) (suspends) -> host, service

return net
