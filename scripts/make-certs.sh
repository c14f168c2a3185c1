#!/usr/bin/env bash
# Makes a test certificate authority and one certificate per node for Artery TLS with mutual
# authentication (troupe.cluster.tls), with keytool only:
#   scripts/make-certs.sh OUT_DIR NODE [NODE...]
# OUT_DIR/ca.p12            the CA's key and certificate (keep it off the nodes)
# OUT_DIR/truststore.p12    the CA certificate: every node's trust-store
# OUT_DIR/NODE.p12          NODE's key and certificate chain signed by the CA: that node's key-store
# NODE is a name or address; it becomes the certificate's CN and subject alternative name.
# Password of every store: $TROUPE_TLS_PASSWORD (default "changeit"). Keys: RSA 2048, valid 365 days.
# For production, sign the node certificates with your own CA instead.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: scripts/make-certs.sh OUT_DIR NODE [NODE...]" >&2
  exit 2
fi
out="$1"; shift
pass="${TROUPE_TLS_PASSWORD:-changeit}"
keytool="keytool"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/keytool" ]; then keytool="$JAVA_HOME/bin/keytool"; fi
mkdir -p "$out"
kt() { "$keytool" -storetype PKCS12 -storepass "$pass" "$@"; }

if [ ! -f "$out/ca.p12" ]; then
  kt -genkeypair -keystore "$out/ca.p12" -alias ca -keyalg RSA -keysize 2048 -validity 365 \
    -dname "CN=Troupe test CA" -ext bc:c -noprompt >/dev/null 2>&1
fi
kt -exportcert -keystore "$out/ca.p12" -alias ca -rfc -file "$out/ca.pem" >/dev/null 2>&1
rm -f "$out/truststore.p12"
kt -importcert -keystore "$out/truststore.p12" -alias ca -file "$out/ca.pem" -noprompt >/dev/null 2>&1

for node in "$@"; do
  store="$out/$node.p12"
  rm -f "$store"
  if [[ "$node" =~ ^[0-9.]+$ ]]; then san="ip:$node"; else san="dns:$node"; fi
  kt -genkeypair -keystore "$store" -alias node -keyalg RSA -keysize 2048 -validity 365 -dname "CN=$node" -noprompt >/dev/null 2>&1
  kt -certreq -keystore "$store" -alias node -file "$out/$node.csr" >/dev/null 2>&1
  kt -gencert -keystore "$out/ca.p12" -alias ca -infile "$out/$node.csr" -outfile "$out/$node.pem" -rfc -validity 365 \
    -ext "san=$san" -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth,clientAuth >/dev/null 2>&1
  # The chain: the CA first, then the node's signed certificate replaces its self-signed one.
  kt -importcert -keystore "$store" -alias ca -file "$out/ca.pem" -noprompt >/dev/null 2>&1
  kt -importcert -keystore "$store" -alias node -file "$out/$node.pem" >/dev/null 2>&1
  rm -f "$out/$node.csr"
  echo "make-certs: $store (CN=$node, $san)"
done
echo "make-certs: trust store $out/truststore.p12; CA $out/ca.p12"
