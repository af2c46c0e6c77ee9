#!/usr/bin/env python3
"""Writes a reproducible newc cpio archive (the initramfs) of a directory to
stdout: sorted names, owner root, one fixed mtime (SOURCE_DATE_EPOCH)."""
import os, stat, sys

root = sys.argv[1]
mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
out = sys.stdout.buffer
ino = 1

def entry(name, mode, data=b"", nlink=1):
    global ino
    n = name.encode() + b"\0"
    hdr = "070701" + "".join("%08X" % v for v in (
        ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, 0, 0, len(n), 0))
    ino += 1
    b = hdr.encode() + n
    b += b"\0" * (-len(b) % 4)
    b += data + b"\0" * (-len(data) % 4)
    out.write(b)

paths = []
for d, dirs, files in os.walk(root):
    for x in dirs + files:
        paths.append(os.path.relpath(os.path.join(d, x), root))
for p in sorted(paths):
    full = os.path.join(root, p)
    st = os.lstat(full)
    if stat.S_ISDIR(st.st_mode):
        entry(p, stat.S_IFDIR | 0o755, nlink=2)
    elif stat.S_ISREG(st.st_mode):
        perm = 0o755 if st.st_mode & 0o111 else 0o644
        entry(p, stat.S_IFREG | perm, open(full, "rb").read())
    else:
        sys.exit("cpio.py: unsupported file type: " + p)
entry("TRAILER!!!", 0)
