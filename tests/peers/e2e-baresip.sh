#!/bin/bash
# End-to-end recipe: baresip PHONE --TLS/SRTP--> [Kamailio TLS proxy] --> baresip BRIDGE
# on 127.0.0.1 only, with a loopback capture, then audio + wire checks.
# usage: e2e-baresip.sh WORKDIR [echo|file] [direct|kamailio]
# Every process is started here and stopped here by PID. Exit 0 = all checks passed.
set -u
W=${1:?workdir}; MODE=${2:-echo}; VIA=${3:-direct}
T=$(cd "$(dirname "$0")" && pwd); P=$W/pki; M=$W/media
mkdir -p "$W"/{phone,bridge,rec-phone,rec-bridge,kam} "$M"
[ -f "$P/ca.pem" ] || "$T/gen-pki.sh" "$P" alice >/dev/null
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$M/tone1k.wav" synth 6 sine 1000 vol 0.5
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$M/tone440.wav" synth 8 sine 440 vol 0.5
rm -f "$W"/rec-*/*.wav
"$T/render.sh" "$T/baresip/config.phone.tmpl" SIP_PORT=5070 CERT=$P/alice.combined.pem CAFILE=$P/ca.pem \
  WAV_IN=$M/tone1k.wav REC_DIR=$W/rec-phone RTP_PORTS=20000-20009 CTRL_PORT=4444 ROLE=phone > "$W/phone/config"
"$T/render.sh" "$T/baresip/accounts.phone.tmpl" USER=alice > "$W/phone/accounts"
if [ "$MODE" = echo ]; then
  "$T/render.sh" "$T/baresip/config.echo.tmpl" SIP_PORT=5060 CERT=$P/server.combined.pem CAFILE=$P/ca.pem \
    REC_DIR=$W/rec-bridge RTP_PORTS=20100-20109 CTRL_PORT=4445 ROLE=bridge > "$W/bridge/config"
  "$T/render.sh" "$T/baresip/accounts.echo.tmpl" USER=echo > "$W/bridge/accounts"; EXPECT=1000
else
  "$T/render.sh" "$T/baresip/config.bridge.tmpl" SIP_PORT=5060 CERT=$P/server.combined.pem CAFILE=$P/ca.pem \
    WAV_IN=$M/tone440.wav REC_DIR=$W/rec-bridge RTP_PORTS=20100-20109 CTRL_PORT=4445 ROLE=bridge > "$W/bridge/config"
  "$T/render.sh" "$T/baresip/accounts.bridge.tmpl" USER=echo > "$W/bridge/accounts"; EXPECT=440
fi
DIAL=sip:echo@127.0.0.1:5061
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
dumpcap -q -P -i lo -f 'udp or tcp' -w "$W/call.pcap" 2> "$W/dumpcap.log" & pids+=($!)
for i in $(seq 50); do grep -q 'Capturing on' "$W/dumpcap.log" && break; sleep 0.1; done
if [ "$VIA" = kamailio ]; then
  "$T/render.sh" "$T/kamailio/kamailio.cfg.tmpl" PROXY_PORT=5081 BRIDGE_ADDR=127.0.0.1:5061 \
    TLS_CFG=$W/kam/tls.cfg RUN_DIR=$W/kam > "$W/kam/kamailio.cfg"
  "$T/render.sh" "$T/kamailio/tls.cfg.tmpl" PROXY_PORT=5081 CERT=$P/server.pem KEY=$P/server.key CA=$P/ca.pem \
    CLIENT_CERT=$P/server.pem CLIENT_KEY=$P/server.key > "$W/kam/tls.cfg"
  kamailio -DD -E -f "$W/kam/kamailio.cfg" -P "$W/kam/kamailio.pid" -Y "$W/kam" -m 64 -M 8 > "$W/kam/kamailio.log" 2>&1 & pids+=($!)
  for i in $(seq 50); do ss -ltn | grep -q '127.0.0.1:5081 ' && break; sleep 0.1; done
  DIAL=sip:echo@127.0.0.1:5081
fi
baresip -f "$W/bridge" -t 15 </dev/null > "$W/bridge.log" 2>&1 & bp=$!; pids+=($bp)
for i in $(seq 50); do ss -ltn | grep -q '127.0.0.1:5061 ' && break; sleep 0.1; done
# phone: the 6 s WAV ends -> baresip hangs up (BYE); -t 10 is the safety net
baresip -f "$W/phone" -s -t 10 -e "/dial $DIAL" </dev/null > "$W/phone.log" 2>&1
wait $bp
sleep 0.5; cleanup; pids=()
rc=0
grep -q 'Call established' "$W/phone.log" || { echo "FAIL: call not established"; rc=1; }
grep -q 'SRTP is Enabled' "$W/phone.log" || { echo "FAIL: SRTP not enabled"; rc=1; }
python3 "$T/wavcheck.py" "$W"/rec-phone/dump-*-dec.wav $EXPECT 0.8 || rc=1
python3 -W ignore "$T/pcap_audit.py" "$W/call.pcap" --pattern-wav "$M/tone1k.wav" --allow-plain-rtcp > "$W/audit.txt" || rc=1
tail -1 "$W/audit.txt"
echo "e2e $MODE $VIA: $([ $rc = 0 ] && echo PASS || echo FAIL)"; exit $rc
