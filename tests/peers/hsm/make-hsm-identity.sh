#!/bin/sh
# SoftHSM2 token + EC P-256 key (pkcs11-tool, package opensc) + cert from the test CA,
# usable by OpenSSL 3.0 through libengine-pkcs11-openssl (engine id "pkcs11").
# usage: make-hsm-identity.sh HSMDIR CA_PEM CA_KEY NAME [PIN]
set -eu
H=$1; CA=$2; CAKEY=$3; NAME=$4; PIN=${5:-1234}; SOPIN=87654321
MOD=/usr/lib/softhsm/libsofthsm2.so
mkdir -p "$H/tokens"
cat > "$H/softhsm2.conf" <<EOC
directories.tokendir = $H/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOC
export SOFTHSM2_CONF="$H/softhsm2.conf"      # every later command needs this too
softhsm2-util --init-token --free --label "$NAME" --pin "$PIN" --so-pin "$SOPIN"
pkcs11-tool --module $MOD --token-label "$NAME" --login --pin "$PIN" \
  --keypairgen --key-type EC:prime256v1 --id 01 --label "$NAME-key"
# openssl config that loads the engine with the SoftHSM module (not p11-kit proxy)
cat > "$H/openssl-pkcs11.cnf" <<EOC
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so
MODULE_PATH = $MOD
init = 0
[req]
distinguished_name = dn
[dn]
EOC
KEYURI="pkcs11:token=$NAME;object=$NAME-key;type=private;pin-value=$PIN"
OPENSSL_CONF="$H/openssl-pkcs11.cnf" openssl req -new -engine pkcs11 -keyform engine -key "$KEYURI" -subj "/CN=$NAME" -out "$H/$NAME.csr"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > "$H/$NAME.ext"
# NOTE: sign WITHOUT the engine config: with OPENSSL_CONF loading the pkcs11 engine,
# 'openssl x509 -req' fails with "default_check:command not supported"
openssl x509 -req -in "$H/$NAME.csr" -CA "$CA" -CAkey "$CAKEY" -CAcreateserial -days 825 -sha256 \
  -extfile "$H/$NAME.ext" -out "$H/$NAME.pem"
echo "cert: $H/$NAME.pem"
echo "key:  $KEYURI"
echo "env:  SOFTHSM2_CONF=$H/softhsm2.conf OPENSSL_CONF=$H/openssl-pkcs11.cnf"
