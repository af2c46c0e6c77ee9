#!/bin/sh
# Throwaway PKI for loopback tests: CA, server cert for 127.0.0.1, client certs. All P-256.
# usage: gen-pki.sh DIR [client names...]   (default clients: alice)
set -eu
D=${1:?usage: gen-pki.sh DIR [names..]}; shift || true
[ $# -gt 0 ] || set -- alice
mkdir -p "$D"; cd "$D"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=Test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
leaf() { # name subject ext
  openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  cat "$1.pem" "$1.key" > "$1.combined.pem"     # baresip sip_certificate wants cert+key in ONE file
  rm -f "$1.csr" "$1.ext"
}
leaf server "/CN=127.0.0.1" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
for c in "$@"; do
leaf "$c" "/CN=$c" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=URI:sip:$c@127.0.0.1"
done
# a cert from a DIFFERENT CA (for negative tests)
openssl ecparam -name prime256v1 -genkey -noout -out rogue-ca.key 2>/dev/null
openssl req -x509 -new -key rogue-ca.key -sha256 -days 3650 -subj "/CN=Rogue CA" -out rogue-ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out rogue.key 2>/dev/null
openssl req -new -key rogue.key -subj "/CN=rogue" -out rogue.csr
openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -days 825 -out rogue.pem 2>/dev/null
cat rogue.pem rogue.key > rogue.combined.pem; rm -f rogue.csr
chmod 600 *.key *.combined.pem
ls
