#!/usr/bin/env python3
"""Tiny SIP-over-TLS probe server (stdlib only). Accepts TLS on 127.0.0.1:PORT,
optionally requires a client certificate, prints every SIP message received verbatim
(to stdout and --log), and answers INVITEs with a fixed final status.

usage: sip_tls_probe.py --port 5061 --cert server.pem --key server.key [--ca ca.pem]
         [--require-client-cert] [--reply 488] [--count 1] [--timeout 20]
  --reply N  : final response to INVITE (default 488); 100 Trying is sent first.
               With --reply 200 an SDP answer with --answer-suite is sent and the
               caller's media on --rtp-port is counted (sizes printed at exit).
               ACK / BYE are answered (ACK silently, BYE/CANCEL/OPTIONS with 200).
  exits after --count calls ended (ACK of a >=300, or BYE after 200), or after --timeout s.
"""
import argparse, base64, collections, os, re, socket, ssl, sys, time, select
KEYLEN = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30,
          "AEAD_AES_128_GCM": 28, "AEAD_AES_256_GCM": 44}

REASONS = {403: "Forbidden", 488: "Not Acceptable Here", 486: "Busy Here",
           480: "Temporarily Unavailable", 500: "Server Internal Error", 200: "OK",
           603: "Decline", 404: "Not Found"}

def split_msgs(buf):
    out = []
    while True:
        i = buf.find(b"\r\n\r\n")
        if i < 0: break
        head = buf[:i].decode("utf-8", "replace")
        m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        if len(buf) < i + 4 + n: break
        out.append(buf[:i + 4 + n]); buf = buf[i + 4 + n:]
    return out, buf

def hdrs(msg, name, short=None):
    head = msg.split("\r\n\r\n", 1)[0]
    res = []
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() in (name.lower(), (short or "").lower()):
            res.append(v.strip())
    return res

def response(req, code, totag="probe1", sdp="", contact=""):
    lines = [f"SIP/2.0 {code} {REASONS.get(code, 'Reason')}"]
    for v in hdrs(req, "Via", "v"): lines.append("Via: " + v)
    if 100 < code < 300:
        for v in hdrs(req, "Record-Route"): lines.append("Record-Route: " + v)
    lines.append("From: " + hdrs(req, "From", "f")[0])
    to = hdrs(req, "To", "t")[0]
    if code > 100 and ";tag=" not in to: to += ";tag=" + totag
    lines.append("To: " + to)
    lines.append("Call-ID: " + hdrs(req, "Call-ID", "i")[0])
    lines.append("CSeq: " + hdrs(req, "CSeq")[0])
    lines.append("Server: sip_tls_probe")
    if contact: lines.append("Contact: " + contact)
    if sdp: lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(sdp.encode()))
    return ("\r\n".join(lines) + "\r\n\r\n" + sdp).encode()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5061)
    ap.add_argument("--cert", required=True); ap.add_argument("--key", required=True)
    ap.add_argument("--ca"); ap.add_argument("--require-client-cert", action="store_true")
    ap.add_argument("--reply", type=int, default=488)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--log")
    ap.add_argument("--answer-suite", default="AES_CM_128_HMAC_SHA1_80",
                    help="crypto suite put in the 200 OK SDP (even if not offered!); 'none' answers plain RTP/AVP")
    ap.add_argument("--rtp-port", type=int, default=31000)
    ap.add_argument("--bye-after", type=float, default=0,
                    help="after the ACK of a 200, send BYE to the caller on the SAME TLS connection after N s")
    a = ap.parse_args()
    log = open(a.log, "w") if a.log else None
    def out(s):
        print(s, flush=True)
        if log: log.write(s + "\n"); log.flush()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.ca: ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED if a.require_client_cert else (ssl.CERT_OPTIONAL if a.ca else ssl.CERT_NONE)
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port)); ls.listen(8)
    out(f"# listening on 127.0.0.1:{a.port} tls, client cert {'required' if a.require_client_cert else 'optional' if a.ca else 'not requested'}")
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtp.bind(("127.0.0.1", a.rtp_port))
    sizes = collections.Counter()
    deadline = time.time() + a.timeout; done = 0; conns = {}; pending_bye = []; invites = {}
    while time.time() < deadline and done < a.count:
        for pb in list(pending_bye):
            if time.time() >= pb[0]:
                pending_bye.remove(pb); c, ack = pb[1], pb[2]
                contact = re.search(r"<([^>]+)>", (hdrs(invites.get(hdrs(ack, "Call-ID", "i")[0], ack), "Contact", "m") or ["<sip:x@127.0.0.1>"])[0]).group(1)
                fr = hdrs(ack, "From", "f")[0]; to = hdrs(ack, "To", "t")[0]
                bye = (f"BYE {contact} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{a.port};branch=z9hG4bKprobebye{int(time.time())}\r\n"
                       f"Max-Forwards: 70\r\nFrom: {to}\r\nTo: {fr}\r\nCall-ID: {hdrs(ack, 'Call-ID', 'i')[0]}\r\n"
                       f"CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
                c.sendall(bye.encode()); out("----- sent on the caller's connection -----\n" + bye.replace("\r\n", "\n") + "----- end -----")
        r, _, _ = select.select([ls, rtp] + list(conns), [], [], 0.5)
        for s in r:
            if s is rtp:
                d, _ = rtp.recvfrom(4096); sizes[len(d)] += 1; continue
            if s is ls:
                c, addr = ls.accept(); c.settimeout(5)
                try:
                    t = ctx.wrap_socket(c, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    out(f"# TLS handshake from {addr} FAILED: {e}"); c.close(); continue
                pc = t.getpeercert()
                out(f"# TLS from {addr}: {t.version()} {t.cipher()[0]} client-cert-subject="
                    f"{dict(x[0] for x in pc['subject']) if pc else None}")
                conns[t] = b""
            else:
                try: data = s.recv(65535)
                except (ssl.SSLError, OSError) as e: data = b""; out(f"# recv error {e}")
                if not data:
                    out("# connection closed by peer"); conns.pop(s); s.close(); continue
                msgs, conns[s] = split_msgs(conns[s] + data)
                for m in msgs:
                    txt = m.decode("utf-8", "replace")
                    out("----- received -----\n" + txt.replace("\r\n", "\n") + "----- end -----")
                    first = txt.split("\r\n", 1)[0]
                    meth = first.split(" ", 1)[0]
                    if first.startswith("SIP/2.0"):
                        if a.bye_after and " BYE" in (hdrs(txt, "CSeq") or [""])[0]: done += 1
                        continue
                    if meth == "INVITE":
                        invites[hdrs(txt, "Call-ID", "i")[0]] = txt
                        s.sendall(response(txt, 100))
                        sdp = ""
                        if a.reply < 300 and a.answer_suite == "none":
                            # A weak bridge: plain RTP, no crypto at all.
                            sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                                   f"m=audio {a.rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
                        elif a.reply < 300:
                            key = base64.b64encode(os.urandom(KEYLEN[a.answer_suite])).decode()
                            sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                                   f"m=audio {a.rtp_port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
                                   f"a=crypto:1 {a.answer_suite} inline:{key}\r\n")
                        s.sendall(response(txt, a.reply, sdp=sdp, contact=f"<sip:probe@127.0.0.1:{a.port};transport=tls>"))
                        out(f"# sent 100, {a.reply}" + (f" with SDP crypto {a.answer_suite}" if sdp else ""))
                        if sdp: out("----- sent SDP -----\n" + sdp.replace("\r\n", "\n") + "----- end -----")
                    elif meth == "ACK":
                        if a.reply >= 300: done += 1
                        elif a.bye_after:
                            pending_bye.append((time.time() + a.bye_after, s, txt))
                    elif meth in ("BYE", "CANCEL", "OPTIONS"):
                        s.sendall(response(txt, 200)); out(f"# sent 200 to {meth}")
                        if meth == "BYE": done += 1
    if sizes: out(f"# media received on {a.rtp_port}: sizes {dict(sizes)}")
    out(f"# exiting (answered {done})")
    time.sleep(0.5)

main()
