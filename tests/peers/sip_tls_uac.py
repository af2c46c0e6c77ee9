#!/usr/bin/env python3
"""Tiny scripted SIP-over-TLS UAC (stdlib only) to probe what a callee answers.
Sends INVITE with an SDES-SRTP offer, prints every response verbatim, ACKs a 2xx,
receives (does not decrypt) the callee's SRTP for --hold seconds, prints packet
sizes, then sends BYE.
usage: sip_tls_uac.py --target 127.0.0.1:5061 [--user echo] [--from-user uac] [--cert c.pem --key c.key]
        [--suites AEAD_AES_256_GCM,AES_CM_128_HMAC_SHA1_80] [--rtp-port 30000] [--hold 3]
        [--local 127.0.0.1]   (the address the SDP offers and the RTP socket binds)
"""
import argparse, base64, os, random, re, select, socket, ssl, time, collections

KEYLEN = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30,
          "AEAD_AES_128_GCM": 28, "AEAD_AES_256_GCM": 44,
          "AES_256_CM_HMAC_SHA1_80": 46, "AES_256_CM_HMAC_SHA1_32": 46}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="127.0.0.1:5061"); ap.add_argument("--user", default="echo")
    ap.add_argument("--from-user", default="uac")
    ap.add_argument("--cert"); ap.add_argument("--key"); ap.add_argument("--ca")
    ap.add_argument("--suites", default="AEAD_AES_256_GCM,AES_CM_128_HMAC_SHA1_80")
    ap.add_argument("--proto", default="RTP/SAVP")
    ap.add_argument("--local", default="127.0.0.1")
    ap.add_argument("--rtp-port", type=int, default=30000); ap.add_argument("--hold", type=float, default=3)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1); port = int(port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if a.ca: ctx.load_verify_locations(a.ca)
    else: ctx.verify_mode = ssl.CERT_NONE
    if a.cert: ctx.load_cert_chain(a.cert, a.key)
    raw = socket.create_connection((host, port), timeout=5)
    s = ctx.wrap_socket(raw); lport = s.getsockname()[1]
    print(f"# TLS {s.version()} {s.cipher()[0]} server={s.getpeercert(binary_form=True) is not None}")
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtp.bind((a.local, a.rtp_port))
    crypto = "".join(f"a=crypto:{i} {su} inline:{base64.b64encode(os.urandom(KEYLEN[su])).decode()}\r\n"
                     for i, su in enumerate([x for x in a.suites.split(",") if x], 1))
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {a.local}\r\ns=-\r\nc=IN IP4 {a.local}\r\nt=0 0\r\n"
           f"m=audio {a.rtp_port} {a.proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
           f"a=fmtp:101 0-15\r\na=sendrecv\r\n{crypto}a=ptime:20\r\n")
    callid = "%x@uac" % random.getrandbits(48); ftag = "%x" % random.getrandbits(32)
    ruri = f"sip:{a.user}@{host}:{port};transport=tls"
    def req(method, cseq, totag=None, body=""):
        br = "z9hG4bK%x" % random.getrandbits(40)
        m = (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/TLS {a.local}:{lport};branch={br};rport\r\n"
             f"Max-Forwards: 70\r\nFrom: <sip:{a.from_user}@{a.local}>;tag={ftag}\r\n"
             f"To: <sip:{a.user}@{host}>{';tag='+totag if totag else ''}\r\nCall-ID: {callid}\r\n"
             f"CSeq: {cseq} {method}\r\nContact: <sip:uac@{a.local}:{lport};transport=tls>\r\n")
        if body: m += f"Content-Type: application/sdp\r\n"
        m += f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        s.sendall(m.encode()); print("----- sent -----\n" + m.replace("\r\n", "\n") + "----- end -----", flush=True)
    buf = b""
    def read_msgs(timeout):
        nonlocal buf
        out = []; end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([s], [], [], 0.2)
            if r:
                d = s.recv(65535)
                if not d: break
                buf += d
            while b"\r\n\r\n" in buf:
                i = buf.index(b"\r\n\r\n"); head = buf[:i].decode()
                mm = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head); n = int(mm.group(1)) if mm else 0
                if len(buf) < i + 4 + n: break
                msg = buf[:i + 4 + n].decode(); buf = buf[i + 4 + n:]; out.append(msg)
                print("----- received -----\n" + msg.replace("\r\n", "\n") + "----- end -----", flush=True)
            if out and re.match(r"SIP/2.0 [2-6]", out[-1]): break
        return out
    req("INVITE", 1, body=sdp)
    final = None; end = time.time() + 10
    while final is None and time.time() < end:
        for m in read_msgs(1):
            if re.match(r"SIP/2.0 [2-6]\d\d", m): final = m
    if not final: print("# no final response"); return 1
    code = int(final.split()[1])
    totag = re.search(r"(?im)^(?:to|t)\s*:.*;tag=([^;\s>]+)", final).group(1)
    if code >= 300: print(f"# final {code}"); return 0   # (stack ACKs non-2xx in real life; probe ignores)
    req("ACK", 1, totag)
    sizes = collections.Counter(); t_end = time.time() + a.hold
    while time.time() < t_end:
        r, _, _ = select.select([rtp], [], [], 0.2)
        if r: d, src = rtp.recvfrom(2048); sizes[len(d)] += 1
    print(f"# SRTP from callee: packet sizes {dict(sizes)} (12 hdr + 160 PCMU + tag: 10 for *_80, 4 for *_32, 16 for GCM)")
    req("BYE", 2, totag); read_msgs(3)
    return 0

raise SystemExit(main())
