#!/usr/bin/env python3
"""wavcheck.py WAV FREQ_HZ [MIN_FRACTION]
Checks that a mono/stereo 16-bit WAV contains a sine at FREQ_HZ: for each 20 ms block,
the share of the block's energy at FREQ (Goertzel, normalised) is computed; a block
'has the tone' when that share >= 0.5 and the block is not silent. Prints stats and exits
0 if the fraction of tone blocks >= MIN_FRACTION (default 0.5), else 1. Stdlib only."""
import math, struct, sys, wave

def read(path):
    w = wave.open(path, 'rb')
    ch, sw, sr, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
    if sw != 2: raise SystemExit(f"{path}: need 16-bit, got {8*sw}-bit")
    raw = w.readframes(n)
    s = struct.unpack('<%dh' % (len(raw) // 2), raw)
    return list(s[::ch]), sr   # first channel

def share(block, sr, f):
    n = len(block); k = f * n / sr; w = 2 * math.pi * k / n; c = 2 * math.cos(w)
    s1 = s2 = 0.0
    for x in block: s1, s2 = x + c * s1 - s2, s1
    p = s1 * s1 + s2 * s2 - c * s1 * s2          # |X(k)|^2
    e = sum(x * x for x in block)
    return (2 * p / (n * e)) if e else 0.0, e / n

def main():
    path, f = sys.argv[1], float(sys.argv[2])
    minfrac = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
    x, sr = read(path)
    blk = sr // 50
    blocks = [x[i:i + blk] for i in range(0, len(x) - blk + 1, blk)]
    tone = silent = 0
    for b in blocks:
        sh, pw = share(b, sr, f)
        if pw < 100: silent += 1      # ~ -50 dBFS
        elif sh >= 0.5: tone += 1
    frac = tone / max(1, len(blocks))
    print(f"{path}: {len(x)/sr:.2f}s sr={sr} blocks={len(blocks)} tone@{f:g}Hz={tone} silent={silent} fraction={frac:.2f}")
    sys.exit(0 if frac >= minfrac else 1)

main()
