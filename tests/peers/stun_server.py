#!/usr/bin/env python3
"""A minimal STUN server (RFC 8489 Binding only, stdlib; its own packet
builder, not dialgate's codec) for the network check's namespace test
(tests/tests/netcheck_netns.rs): answers every Binding request with a
success response carrying XOR-MAPPED-ADDRESS, prints one line per answer.
usage: stun_server.py ADDR PORT
"""
import socket, struct, sys

COOKIE = 0x2112A442

def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    print(f"STUN listening {addr}:{port}", flush=True)
    while True:
        data, peer = s.recvfrom(2048)
        if len(data) < 20:
            continue
        kind, length, cookie = struct.unpack("!HHI", data[:8])
        if kind != 0x0001 or cookie != COOKIE:
            continue
        tx = data[8:20]
        ip = struct.unpack("!I", socket.inet_aton(peer[0]))[0] ^ COOKIE
        attr = struct.pack("!HHBBHI", 0x0020, 8, 0, 1, peer[1] ^ (COOKIE >> 16), ip)
        s.sendto(struct.pack("!HHI", 0x0101, len(attr), COOKIE) + tx + attr, peer)
        print(f"STUN answered {peer[0]}:{peer[1]}", flush=True)

main()
