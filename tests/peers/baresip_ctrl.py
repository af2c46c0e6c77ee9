#!/usr/bin/env python3
"""baresip_ctrl.py PORT [COMMAND [PARAMS]] [--listen SECONDS]
Talk to baresip's ctrl_tcp module (netstring-framed JSON) on 127.0.0.1:PORT.
Sends {"command":..., "params":..., "token":"t1"} if COMMAND given, then prints every
event/response received for --listen seconds (default 2). Stdlib only."""
import json, socket, sys, time

def netstrings(sock, seconds):
    buf = b""; end = time.time() + seconds
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try: d = sock.recv(4096)
        except socket.timeout: break
        if not d: break
        buf += d
        while b":" in buf:
            n, _, rest = buf.partition(b":")
            n = int(n)
            if len(rest) < n + 1: break
            yield json.loads(rest[:n]); buf = rest[n + 1:]

args = [a for a in sys.argv[1:] if not a.startswith("--")]
listen = float(sys.argv[sys.argv.index("--listen") + 1]) if "--listen" in sys.argv else 2
if "--listen" in sys.argv: args.remove(sys.argv[sys.argv.index("--listen") + 1])
s = socket.create_connection(("127.0.0.1", int(args[0])))
if len(args) > 1:
    msg = json.dumps({"command": args[1], "params": " ".join(args[2:]), "token": "t1"}).encode()
    s.sendall(b"%d:%s," % (len(msg), msg))
for m in netstrings(s, listen):
    print(json.dumps(m), flush=True)
