#!/usr/bin/env python3
"""Parses every line of a received audit trail with an independent
RFC 5424 parser (PyPI's syslog-rfc5424-parser, not dialgate's code) and
prints one tab-separated line per record: seq, msgid, severity,
facility, hostname, appname, then key=value for each parameter of the
dialgate@32473 element (records hold no tabs: dialgate writes control
characters as '?').
Exits 1 naming the first line that is not RFC 5424 or lacks the element."""

import sys

from syslog_rfc5424_parser import SyslogMessage

SD_ID = "dialgate@32473"


def main(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                m = SyslogMessage.parse(line).as_dict()
            except Exception as e:  # the parser's own error types
                print(f"line {n}: not RFC 5424: {e}", file=sys.stderr)
                return 1
            sd = m.get("sd", {}).get(SD_ID)
            if sd is None or "seq" not in sd or "prev" not in sd:
                print(f"line {n}: no {SD_ID} element with seq and prev", file=sys.stderr)
                return 1
            out.append({
                "seq": int(sd["seq"]),
                "msgid": m.get("msgid"),
                "hostname": m.get("hostname"),
                "appname": m.get("appname"),
                "severity": m.get("severity"),
                "facility": m.get("facility"),
                "params": sd,
                "msg": m.get("msg"),
            })
    for r in out:
        fields = [str(r["seq"]), r["msgid"], r["severity"], r["facility"], r["hostname"], r["appname"]]
        fields += [f"{k}={v}" for k, v in r["params"].items()]
        print("\t".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
