#!/usr/bin/env bash
# Makes a stack's internal CA and the one certificate its servers present to each other
# (NATS leaf links to the hub, Cassandra internode), and stores them as secrets of the stack.
# The CA key stays in ./chorus-<stack>-pki/: move it to your secret store, it signs renewals.
#
# Usage: iac/scripts/make-internal-tls.sh STACK [DAYS]     (run from anywhere)
set -euo pipefail
stack=${1:?usage: $0 STACK [DAYS]}
days=${2:-825}
iac=$(cd "$(dirname "$0")/.." && pwd)
out=$PWD/chorus-$stack-pki
mkdir -m 0700 "$out"

openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -keyout "$out/ca.key" -out "$out/ca.pem" \
  -subj "/CN=chorus $stack internal CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
# PKCS#8 (OpenSSL 3's default): Cassandra's PEM keystore reads no other form.
openssl req -newkey rsa:2048 -nodes -keyout "$out/node.key" -out "$out/node.csr" \
  -subj "/CN=*.chorus.internal"
cat > "$out/ext.cnf" <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
# Both: a region's NATS is a client of the hub, Cassandra nodes are both ends.
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:*.chorus.internal,DNS:chorus.internal
EXT
openssl x509 -req -in "$out/node.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
  -CAcreateserial -days "$days" -extfile "$out/ext.cnf" -out "$out/node.pem"

cd "$iac"
pulumi config set --stack "$stack" --secret chorus:internalCa -- "$(cat "$out/ca.pem")"
pulumi config set --stack "$stack" --secret chorus:internalCert -- "$(cat "$out/node.pem")"
pulumi config set --stack "$stack" --secret chorus:internalKey -- "$(cat "$out/node.key")"
echo "stored in stack $stack; CA key left in $out/ca.key"
