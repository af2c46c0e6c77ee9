#!/usr/bin/env python3
"""pcap_audit.py CAPTURE.pcap [--pattern-wav tone.wav] [--min-entropy 7.5]
Audits a loopback capture of a call (stdlib + tshark only):
  1. TLS handshakes (ClientHello/ServerHello: versions, chosen suite, SNI, groups)
  2. cleartext SIP anywhere: raw regex on every frame + SIP heuristics on TCP/UDP
  3. every UDP flow: packets, payload-size histogram, RTP header view, byte entropy
     of the payload after the 12-byte RTP header, SRTP tag length guess for PCMU/20ms
  4. optional: G.711 u-law/A-law encoding of --pattern-wav searched in UDP payloads
     (any 16-byte window of the encoded audio found => audio in clear)
  5. cleartext RTCP: a packet whose RTCP length fields chain up to exactly the UDP
     payload length is plain RTCP (SRTCP appends a 4-byte E|index word + tag).
     NOTE baresip 1.0.0 itself sends plain RTCP (APP "PINGPONG" at start, BYE+SDES
     with the CNAME at hang-up), so restrict the verdict with --from-ports to the
     ports of the party under test (e.g. the gateway's media ports).
Exit 1 if cleartext SIP, cleartext RTCP, a low-entropy UDP flow (>=50 pkts) or the
pattern is found (only flows whose source port is in --from-ports, if given)."""
import argparse, collections, math, subprocess, sys

def tshark(args):
    r = subprocess.run(["tshark", "-n"] + args, capture_output=True, text=True)
    if r.returncode: sys.exit("tshark failed: " + r.stderr)
    return [l.split("\t") for l in r.stdout.splitlines() if l.strip()]

def entropy(b):
    if not b: return 0.0
    c = collections.Counter(b); n = len(b)
    return -sum(v / n * math.log2(v / n) for v in c.values())

def g711_windows(wav, w=16):
    import audioop, wave   # audioop: stdlib up to Python 3.12
    f = wave.open(wav); pcm = f.readframes(f.getnframes())
    if f.getnchannels() != 1: pcm = audioop.tomono(pcm, 2, 1, 0)
    pats = set()
    for enc in (audioop.lin2ulaw(pcm, 2), audioop.lin2alaw(pcm, 2)):
        for i in range(0, len(enc) - w, 7): pats.add(enc[i:i + w])
    return pats

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("pcap")
    ap.add_argument("--pattern-wav"); ap.add_argument("--min-entropy", type=float, default=7.5)
    ap.add_argument("--allow-plain-rtcp", action="store_true",
                    help="report but do not fail on plain RTCP (baresip 1.0.0 sends some itself)")
    ap.add_argument("--from-ports", help="e.g. 20000-20099,30000: judge only UDP flows sent from these ports")
    a = ap.parse_args(); bad = []
    print("== TLS handshakes (type 1=ClientHello 2=ServerHello)")
    for r in tshark(["-r", a.pcap, "-Y", "tls.handshake.type==1 || tls.handshake.type==2", "-T", "fields",
                     "-e", "frame.number", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
                     "-e", "tls.handshake.type", "-e", "tls.handshake.extensions.supported_version",
                     "-e", "tls.handshake.ciphersuite", "-e", "tls.handshake.extensions_server_name",
                     "-e", "tls.handshake.extensions_supported_group", "-e", "tls.handshake.extensions_key_share_group"]):
        r += [""] * (11 - len(r))
        kind = "ClientHello" if r[5] == "1" else "ServerHello"
        if kind == "ServerHello":
            print(f"  #{r[0]} {r[1]}:{r[2]} -> {r[3]}:{r[4]} {kind} version={r[6] or '(<=1.2, see record)'} suite={r[7]} key_share={r[10]}")
        else:
            print(f"  #{r[0]} {r[1]}:{r[2]} -> {r[3]}:{r[4]} {kind} versions={r[6]} sni={r[8] or '-'} groups={r[9]}")
    print("== cleartext SIP")
    raw = tshark(["-r", a.pcap, "-Y", r'frame matches "(?i)sip/2[.]0"',
                  "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info"])
    heur = tshark(["-r", a.pcap, "--enable-heuristic", "sip_tcp", "--enable-heuristic", "sip_udp",
                   "-Y", "sip.Method || sip.Status-Code", "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info"])
    for r in raw + heur: print("  CLEARTEXT:", " ".join(r))
    if raw or heur: bad.append("cleartext SIP")
    else: print("  none (raw 'SIP/2.0' search and SIP heuristics on all TCP/UDP)")
    print("== UDP flows")
    flows = collections.OrderedDict()
    for r in tshark(["-r", a.pcap, "-Y", "udp", "-T", "fields", "-e", "ip.src", "-e", "udp.srcport",
                     "-e", "ip.dst", "-e", "udp.dstport", "-e", "udp.payload"]):
        if len(r) < 5: continue
        flows.setdefault(f"{r[0]}:{r[1]} -> {r[2]}:{r[3]}", []).append(bytes.fromhex(r[4]))
    pats = g711_windows(a.pattern_wav) if a.pattern_wav else set()
    judged = set()
    if a.from_ports:
        for part in a.from_ports.split(","):
            lo, _, hi = part.partition("-"); judged.update(range(int(lo), int(hi or lo) + 1))
    def plain_rtcp(p):
        i = 0
        while i + 4 <= len(p):
            if p[i] >> 6 != 2: return False
            i += (int.from_bytes(p[i + 2:i + 4], "big") + 1) * 4
        return i == len(p)
    for k, pk in flows.items():
        sport = int(k.split(" -> ")[0].rsplit(":", 1)[1])
        judge = not judged or sport in judged
        sizes = collections.Counter(len(p) for p in pk)
        rtp = [p for p in pk if len(p) >= 12 and p[0] >> 6 == 2 and not 72 <= (p[1] & 0x7f) <= 76]
        rtcp = [p for p in pk if len(p) >= 8 and p[0] >> 6 == 2 and 72 <= (p[1] & 0x7f) <= 76]
        body = b"".join(p[12:] for p in rtp) or b"".join(pk)
        e = entropy(body)
        pts = collections.Counter(p[1] & 0x7f for p in rtp)
        ssrcs = {p[8:12].hex() for p in rtp}
        common = sizes.most_common(1)[0][0]
        tag = common - 12 - 160
        guess = {10: "AES_CM_*_HMAC_SHA1_80 (10-byte tag)", 4: "*_HMAC_SHA1_32 (4-byte tag)",
                 16: "AEAD GCM (16-byte tag)", 0: "NO TAG => plain RTP?!"}.get(tag, f"{tag} extra bytes")
        print(f"  {k}: {len(pk)} pkts, sizes {dict(sizes.most_common(4))}, rtp={len(rtp)} pt={dict(pts)} "
              f"ssrc={','.join(sorted(ssrcs)) or '-'} rtcp={len(rtcp)} entropy(after hdr)={e:.3f} bits/byte; "
              f"PCMU/20ms guess: {guess}")
        plain = [p for p in rtcp if plain_rtcp(p)]
        if plain:
            print(f"      CLEARTEXT RTCP: {len(plain)} packets, e.g. {plain[0][:40].hex()}"
                  f"{'' if judge else '  (not judged: --from-ports)'}")
            if judge and not a.allow_plain_rtcp: bad.append(f"cleartext RTCP {k}")
        if judge and len(pk) >= 50 and e < a.min_entropy:
            bad.append(f"low entropy {k}")
        if pats:
            hits = sum(1 for p in pk if any(p[i:i + 16] in pats for i in range(0, max(0, len(p) - 15))))
            print(f"      pattern windows found in {hits} packets")
            if hits and judge: bad.append(f"audio pattern in clear {k}")
    print("== verdict:", "FAIL " + "; ".join(bad) if bad else "OK")
    return 1 if bad else 0

sys.exit(main())
