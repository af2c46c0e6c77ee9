#!/usr/bin/env python3
"""A flood of DHCP clients for tests/tests/dhcpd_netns.rs, written apart
from dialgate's codec so that a shared mistake cannot hide.

    dhcp_flood.py IFACE COUNT

From 0.0.0.0:68 on IFACE to 255.255.255.255:67: first one datagram of
each malformed kind the kit's server must refuse, printing
`FLOOD-SENT <reason>` (the reason the server should log), then COUNT
well-formed DHCPDISCOVERs, each from a new random locally administered
MAC, paced (100 a burst, 5 ms apart) so that the kernel's receive buffer
does not drop them, then `FLOOD-DONE sent=<n>`.
"""
import os
import socket
import struct
import sys
import time

IFACE, COUNT = sys.argv[1], int(sys.argv[2])
COOKIE = bytes([99, 130, 83, 99])


def opt(code, value):
    return bytes([code, len(value)]) + value


def request(chaddr, options, op=1, giaddr="0.0.0.0", cookie=COOKIE, end=True):
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        op, 1, 6, 0, int.from_bytes(os.urandom(4), "big"), 0, 0x8000,
        bytes(4), bytes(4), bytes(4), socket.inet_aton(giaddr),
        chaddr + bytes(10), bytes(64), bytes(128),
    )
    body = cookie + b"".join(options) + (b"\xff" if end else b"")
    return (header + body).ljust(300, b"\x00")


def mac():
    m = bytearray(os.urandom(6))
    m[0] = (m[0] & 0xFC) | 0x02  # unicast, locally administered
    return bytes(m)


DISCOVER = [opt(53, bytes([1]))]
good = request(mac(), DISCOVER)
malformed = [
    ("truncated", good[:200]),
    ("not-bootrequest", request(mac(), DISCOVER, op=2)),
    ("no-magic-cookie", request(mac(), DISCOVER, cookie=b"\x00\x00\x00\x00")),
    ("option-past-end", request(mac(), DISCOVER + [bytes([12, 200, 1, 2])], end=False)[:260]),
    ("no-end-option", request(mac(), DISCOVER, end=False)),
    ("relayed", request(mac(), DISCOVER, giaddr="10.9.9.9")),
    ("bad-chaddr", request(b"\xff" * 6, DISCOVER)),
    ("unknown-message-type", request(mac(), [opt(53, bytes([42]))])),
    ("not-client-message", request(mac(), [opt(53, bytes([2]))])),
    ("no-message-type", request(mac(), [opt(12, b"phone")])),
    ("bad-option-length", request(mac(), DISCOVER + [opt(50, b"\x0a\x4d\x00")])),
    ("oversize", request(mac(), DISCOVER) + bytes(1400)),
]

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
s.bind(("0.0.0.0", 68))
for name, packet in malformed:
    s.sendto(packet, ("255.255.255.255", 67))
    print("FLOOD-SENT", name, flush=True)
    time.sleep(0.01)
sent = 0
for i in range(COUNT):
    s.sendto(request(mac(), DISCOVER), ("255.255.255.255", 67))
    sent += 1
    if i % 100 == 99:
        time.sleep(0.005)
print("FLOOD-DONE sent=%d" % sent, flush=True)
