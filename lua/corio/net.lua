-- corio.net: the public networking functions (TCP for now), taken from
-- corio.core; init.lua copies them into the corio module.
local core = require "corio.core"

local net = {}

net.connect = core.connect  -- corio.connect(host, port [, opts]) (suspends) -> Stream
net.serve = core.serve      -- corio.serve(host, port, handler [, opts]) -> Server
net.udp = core.udp          -- corio.udp([opts]) -> UDP socket
net.getaddrinfo = core.getaddrinfo  -- corio.getaddrinfo(host [, port [, opts]]) (suspends) -> list
net.getnameinfo = core.getnameinfo  -- corio.getnameinfo(host, port [, opts]) (suspends) -> host, service

return net
