#!/usr/bin/env python3
"""A hostile DHCP server for tests/tests/dhcp_netns.rs, written apart from
dialgate's codec so that a shared mistake cannot hide.

    hostile_dhcp.py IFACE SERVER_IP

Waits (at most 20 s) for one DHCPDISCOVER on IFACE, answers it with a
burst of broadcast replies that a careful client must drop, prints
`HOSTILE-SENT <name>` for each, and exits (freeing port 67 for a real
server):

  wrong-xid              a good OFFER with another transaction id
  wrong-chaddr           a good OFFER for another hardware address
  router-outside-subnet  an OFFER whose router is 10.9.9.9 on a /24
  bad-address            an OFFER of 127.0.0.1
  no-server-id           an OFFER without option 54
  lease-too-short        an OFFER with a 5 s lease
  option-past-end        an option whose length runs past the datagram
  oversize               a 2000-byte reply
"""
import socket
import struct
import sys

IFACE, SERVER = sys.argv[1], sys.argv[2]
COOKIE = bytes([99, 130, 83, 99])


def ip(a):
    return socket.inet_aton(a)


def opt(code, value):
    return bytes([code, len(value)]) + value


def reply(xid, chaddr, yiaddr, options, end=True):
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        2, 1, 6, 0, xid, 0, 0x8000,
        ip("0.0.0.0"), ip(yiaddr), ip(SERVER), ip("0.0.0.0"),
        chaddr + bytes(10), bytes(64), bytes(128),
    )
    body = COOKIE + opt(53, bytes([2])) + b"".join(options)
    return header + body + (b"\xff" if end else b"")


def lease(router="192.168.77.1", secs=120, server=True):
    o = [
        opt(1, ip("255.255.255.0")),
        opt(3, ip(router)),
        opt(6, ip("192.168.77.53")),
        opt(51, struct.pack("!I", secs)),
    ]
    if server:
        o.insert(0, opt(54, ip(SERVER)))
    return o


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
s.bind(("0.0.0.0", 67))
s.settimeout(20)
print("HOSTILE-READY", flush=True)
while True:
    data, _ = s.recvfrom(2048)
    if len(data) >= 244 and data[0] == 1 and data[236:240] == COOKIE and b"\x35\x01\x01" in data[240:]:
        break
xid = struct.unpack("!I", data[4:8])[0]
chaddr = data[28:34]
good = "192.168.77.50"
bursts = [
    ("wrong-xid", reply(xid ^ 0x5A5A5A5A, chaddr, good, lease())),
    ("wrong-chaddr", reply(xid, bytes([2, 0, 0, 0, 0, 0x66]), good, lease())),
    ("router-outside-subnet", reply(xid, chaddr, good, lease(router="10.9.9.9"))),
    ("bad-address", reply(xid, chaddr, "127.0.0.1", lease())),
    ("no-server-id", reply(xid, chaddr, good, lease(server=False))),
    ("lease-too-short", reply(xid, chaddr, good, lease(secs=5))),
    ("option-past-end", reply(xid, chaddr, good, lease() + [bytes([12, 200, 1, 2])], end=False)),
    ("oversize", reply(xid, chaddr, good, lease()) + bytes(2000)),
]
for name, packet in bursts:
    s.sendto(packet, ("255.255.255.255", 68))
    print("HOSTILE-SENT", name, flush=True)
s.close()
