#!/usr/bin/env bash
# A private test Certificate Authority made with `openssl`, for the revocation tests.
#
#   HTTP_PORT=P bash scripts/testca.sh start DIR      # make the CA in DIR (once), publish
#   bash scripts/testca.sh revoke DIR SERIAL [REASON] [both|crl|ocsp]
#                                                     # revoke a leaf, publish where asked
#   bash scripts/testca.sh publish DIR [both|crl|ocsp] # publish the CA's database as it is
#   bash scripts/testca.sh respond DIR SIGNER          # one OCSP request (DER, stdin) answered
#                                                     # by `openssl ocsp` (DER, stdout)
#   bash scripts/testca.sh stop DIR                    # nothing runs: kept for symmetry
#
# HTTP_PORT is the loopback port of the test's HTTP server (tests/support/testca.rs), which
# serves DIR/www (the CRLs and CA certificates), certificates the way crt.sh's `?d=` does and
# the OCSP responders. It is written into the certificates (AIA caIssuers, CRL distribution
# point), as are OCSP_PORT (the responder in every leaf's AIA) and, recorded for the test,
# OCSP_DELEGATED_PORT and OCSP_ROGUE_PORT; free ports are chosen here when they are not given,
# and all four are kept in DIR/ports.
#
# Why no `openssl ocsp -port` daemon: OpenSSL 3's `-port` takes a number only and listens on
# [::], every interface; a test server must listen on 127.0.0.1 only. So the test's HTTP
# server takes the request on loopback and hands it to `openssl ocsp -index ... -reqin
# -respout` (`respond` here), which looks the serial up in DIR/ocsp/index.txt and signs the
# answer exactly as its daemon does. "Responder down" is the HTTP server closing that port.
#
# What DIR holds after `start` (keys mode 0600, certificates PEM unless named .crt/.crl):
#   root.pem/.key           "cprwatch Test Root" (EC P-384), self-signed
#   intermediate.pem/.key   "cprwatch Test Issuing CA" (RSA 2048), signed by the root: issues
#                           the leaves, the CRL and the direct OCSP responses
#   ocsp-delegated.pem/.key delegated responder (EC P-256): extendedKeyUsage OCSPSigning,
#                           id-pkix-ocsp-nocheck, signed by the intermediate
#   rogue-root.pem, ocsp-rogue.pem/.key  a responder with OCSPSigning signed by another CA:
#                           its answers carry a valid signature by a signer nobody trusts
#   leaves (signed by the intermediate, AIA OCSP http://127.0.0.1:OCSP_PORT, caIssuers
#   http://127.0.0.1:HTTP_PORT/intermediate.crt, CRL DP http://127.0.0.1:HTTP_PORT/intermediate.crl):
#     good.pem     key-a (EC P-256), good.example-ca.test
#     mate.pem     key-a again, mate.example-ca.test: another certificate of the same key
#     expired.pem  key-a again, expired 10 days ago (still in the CA's database, "good")
#     precert.pem  key-b (RSA), with the critical CT poison extension (1.3.6.1.4.1.11129.2.4.3)
#     final.pem    key-b, the final certificate of precert.pem: same serial, no poison
#     other.pem    key-c (RSA), good.example-ca.test too: the certificate a desk finds when it
#                  looks up the domain instead of the reported certificate
#     unknown.pem  key-c, issued but not in the CA's database: OCSP says "unknown"
#   key-a.pem, key-b.pem, key-c.pem  the leaves' private keys
#   certs.tsv    one line per certificate served the crt.sh way: name, crt.sh id, serial (hex,
#                lower case), SHA-256, SPKI SHA-256, notBefore, notAfter (UTC,
#                YYYY-MM-DDTHH:MM:SS), issuer name, common name, file
#   ca/          the `openssl ca` database (index.txt, serial, crlnumber, openssl.cnf)
#   ocsp/index.txt  the database as the OCSP responder last saw it (published)
#   www/         served over HTTP: intermediate.crl and root.crl (DER), intermediate.crt and
#                root.crt (DER)
#
# Revoking: `openssl ca -revoke` on the CA's database with a CRLReason (keyCompromise unless
# given), then publishing to the CRL (a new one, `openssl ca -gencrl`), to the responder (its
# copy of the database), or both (the default). Publishing to one only makes the OCSP/CRL
# disagreement of a cached responder. The precertificate and its final certificate share one
# database row: revoking the serial revokes both.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR | revoke DIR SERIAL [REASON] [both|crl|ocsp] | publish DIR [both|crl|ocsp] | respond DIR issuer|delegated|rogue" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2

log() { echo "testca.sh: $*" >&2; }
# free_port, listening
. "$(dirname "${BASH_SOURCE[0]}")/loopback.sh"

# How long the CRL and the OCSP answers say they are good for (nextUpdate - thisUpdate).
CRL_DAYS=7
OCSP_DAYS=1

# Run openssl quietly; on failure show what it said.
ossl() {
  local out
  if ! out=$(openssl "$@" 2>&1); then
    log "openssl $* failed:"
    echo "$out" >&2
    exit 1
  fi
}

# YYMMDDHHMMSSZ, `openssl ca -startdate` style, DAYS days from now (negative: past).
ca_date() {
  date -u -d "$1 days" +%y%m%d%H%M%SZ
}

# The certificate-to-be's extensions: a TLS server leaf of the intermediate.
leaf_ext() {
  local dns=$1 extra=${2:-}
  cat <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:$dns
certificatePolicies = 2.23.140.1.2.1
authorityInfoAccess = OCSP;URI:http://127.0.0.1:$ocsp_port,caIssuers;URI:http://127.0.0.1:$http_port/intermediate.crt
crlDistributionPoints = URI:http://127.0.0.1:$http_port/intermediate.crl
$extra
EOF
}

# Issue with `openssl ca` from the intermediate: NAME KEY SERIAL(hex) EXTFILE [DB] [START END].
# DB "scratch" issues outside the CA's database (the final certificate, whose serial is already
# there as the precertificate's, and the unknown one).
issue() {
  local name=$1 key=$2 serial=$3 ext=$4 db=${5:-ca} start=${6:-} end=${7:-}
  local cn
  cn=$(awk -F' = ' '/^subjectAltName/ { sub("DNS:", "", $2); print $2 }' "$ext")
  ossl req -new -key "$dir/$key" -subj "/C=XX/O=cprwatch test/CN=$cn" -out "$dir/tmp/$name.csr"
  echo "$serial" >"$dir/$db/serial"
  local dates=(-days 90)
  [ -z "$start" ] || dates=(-startdate "$start" -enddate "$end")
  ossl ca -batch -notext -config "$dir/$db/openssl.cnf" -in "$dir/tmp/$name.csr" \
    -out "$dir/$name.pem" -extfile "$ext" "${dates[@]}"
}

ca_config() {
  local d=$1
  mkdir -p "$d/new"
  : >"$d/index.txt"
  echo "unique_subject = no" >"$d/index.txt.attr"
  echo 01 >"$d/crlnumber"
  cat >"$d/openssl.cnf" <<EOF
# Written by scripts/testca.sh.
[ca]
default_ca = testca
[testca]
database = $d/index.txt
new_certs_dir = $d/new
serial = $d/serial
crlnumber = $d/crlnumber
certificate = $dir/intermediate.pem
private_key = $dir/intermediate.key
default_md = sha256
policy = anything
preserve = yes
copy_extensions = none
unique_subject = no
crl_extensions = crl_ext
default_crl_days = $CRL_DAYS
[anything]
C = optional
O = optional
CN = supplied
[crl_ext]
authorityKeyIdentifier = keyid
EOF
}

# One line of certs.tsv for NAME with crt.sh id ID.
manifest_line() {
  local name=$1 id=$2 f="$dir/$1.pem"
  local serial sha spki nb na issuer cn
  serial=$(openssl x509 -in "$f" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
  sha=$(openssl x509 -in "$f" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
  spki=$(openssl x509 -in "$f" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
  nb=$(date -u -d "$(openssl x509 -in "$f" -noout -startdate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%S)
  na=$(date -u -d "$(openssl x509 -in "$f" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%S)
  issuer=$(openssl x509 -in "$f" -noout -issuer -nameopt sep_comma_plus_space,utf8 | sed 's/^issuer=//')
  cn=$(openssl x509 -in "$f" -noout -subject -nameopt multiline | awk -F' = ' '/commonName/ { print $2 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$id" "$serial" "$sha" "$spki" "$nb" "$na" "$issuer" "$cn" "$f"
}

make_ca() {
  mkdir -p "$dir/tmp" "$dir/www" "$dir/ocsp"
  chmod 700 "$dir"
  local http=http://127.0.0.1:$http_port

  # Root (P-384) and issuing intermediate (RSA 2048).
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$dir/root.key"
  ossl req -x509 -new -key "$dir/root.key" -sha384 -days 3650 -subj "/C=XX/O=cprwatch test/CN=cprwatch Test Root" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$dir/root.pem"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/intermediate.key"
  ossl req -new -key "$dir/intermediate.key" -subj "/C=XX/O=cprwatch test/CN=cprwatch Test Issuing CA" -out "$dir/tmp/intermediate.csr"
  cat >"$dir/tmp/intermediate.ext" <<EOF
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
authorityInfoAccess = caIssuers;URI:$http/root.crt
crlDistributionPoints = URI:$http/root.crl
EOF
  ossl x509 -req -in "$dir/tmp/intermediate.csr" -CA "$dir/root.pem" -CAkey "$dir/root.key" -sha384 \
    -set_serial 0x2001 -days 1825 -extfile "$dir/tmp/intermediate.ext" -out "$dir/intermediate.pem"

  ca_config "$dir/ca"
  ca_config "$dir/scratch"

  # The delegated responder (P-256), issued by the intermediate but outside its database, as
  # responder certificates usually are.
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ocsp-delegated.key"
  cat >"$dir/tmp/delegated.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
1.3.6.1.5.5.7.48.1.5 = DER:05:00
EOF
  ossl req -new -key "$dir/ocsp-delegated.key" -subj "/C=XX/O=cprwatch test/CN=cprwatch Test OCSP Responder" -out "$dir/tmp/delegated.csr"
  echo 3001 >"$dir/scratch/serial"
  ossl ca -batch -notext -config "$dir/scratch/openssl.cnf" -in "$dir/tmp/delegated.csr" -days 30 \
    -extfile "$dir/tmp/delegated.ext" -out "$dir/ocsp-delegated.pem"

  # A responder with OCSPSigning from a CA nobody trusts.
  ossl req -x509 -newkey EC -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/rogue-root.key" \
    -days 3650 -subj "/C=XX/O=elsewhere/CN=Rogue Root" -addext "basicConstraints=critical,CA:TRUE" -out "$dir/rogue-root.pem"
  ossl req -new -newkey EC -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ocsp-rogue.key" \
    -subj "/C=XX/O=elsewhere/CN=Rogue OCSP Responder" -out "$dir/tmp/rogue.csr"
  ossl x509 -req -in "$dir/tmp/rogue.csr" -CA "$dir/rogue-root.pem" -CAkey "$dir/rogue-root.key" \
    -set_serial 0x4001 -days 30 -extfile "$dir/tmp/delegated.ext" -out "$dir/ocsp-rogue.pem"

  # Leaf keys.
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/key-a.pem"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/key-b.pem"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/key-c.pem"

  leaf_ext good.example-ca.test >"$dir/tmp/good.ext"
  leaf_ext mate.example-ca.test >"$dir/tmp/mate.ext"
  leaf_ext expired.example-ca.test >"$dir/tmp/expired.ext"
  leaf_ext precert.example-ca.test "1.3.6.1.4.1.11129.2.4.3 = critical,DER:05:00" >"$dir/tmp/precert.ext"
  leaf_ext precert.example-ca.test >"$dir/tmp/final.ext"
  leaf_ext unknown.example-ca.test >"$dir/tmp/unknown.ext"
  issue good key-a.pem 1001 "$dir/tmp/good.ext"
  issue mate key-a.pem 1002 "$dir/tmp/mate.ext"
  issue expired key-a.pem 1003 "$dir/tmp/expired.ext" ca "$(ca_date -400)" "$(ca_date -10)"
  issue precert key-b.pem 1004 "$dir/tmp/precert.ext"
  issue final key-b.pem 1004 "$dir/tmp/final.ext" scratch
  issue other key-c.pem 1005 "$dir/tmp/good.ext"
  issue unknown key-c.pem 1006 "$dir/tmp/unknown.ext" scratch
  chmod 600 "$dir"/*.key "$dir"/key-*.pem

  ossl x509 -in "$dir/root.pem" -outform DER -out "$dir/www/root.crt"
  ossl x509 -in "$dir/intermediate.pem" -outform DER -out "$dir/www/intermediate.crt"
  # An empty root CRL (the intermediate's distribution point), signed once.
  ossl ca -gencrl -config "$dir/ca/openssl.cnf" -keyfile "$dir/root.key" -cert "$dir/root.pem" \
    -md sha384 -out "$dir/tmp/root.crl.pem" -crldays 30
  ossl crl -in "$dir/tmp/root.crl.pem" -outform DER -out "$dir/www/root.crl"

  local name id=9100000001 tsv=""
  for name in good mate expired precert final other unknown; do
    tsv+=$(manifest_line "$name" "$id")$'\n'
    id=$((id + 1))
  done
  printf '%s' "$tsv" >"$dir/certs.tsv.new"
  mv "$dir/certs.tsv.new" "$dir/certs.tsv"
  echo done >"$dir/made"
}

publish_crl() {
  ossl ca -gencrl -config "$dir/ca/openssl.cnf" -out "$dir/tmp/intermediate.crl.pem"
  ossl crl -in "$dir/tmp/intermediate.crl.pem" -outform DER -out "$dir/www/intermediate.crl.new"
  # Renamed into place: the HTTP server never serves half a file.
  mv "$dir/www/intermediate.crl.new" "$dir/www/intermediate.crl"
}

publish_ocsp() {
  # Two leaves share a subject (good and other): the responder must be told that is fine.
  cp "$dir/ca/index.txt.attr" "$dir/ocsp/index.txt.attr"
  cp "$dir/ca/index.txt" "$dir/ocsp/index.txt.new"
  mv "$dir/ocsp/index.txt.new" "$dir/ocsp/index.txt"
}

publish() {
  case "${1:-both}" in
    both) publish_crl; publish_ocsp ;;
    crl) publish_crl ;;
    ocsp) publish_ocsp ;;
    *) usage ;;
  esac
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/made" ]; then
    read -r http_port ocsp_port ocsp_delegated_port ocsp_rogue_port <"$dir/ports"
    return
  fi
  http_port=${HTTP_PORT:-}
  if [ -z "$http_port" ]; then
    log "HTTP_PORT (the test HTTP server's loopback port) is required to make the CA"
    exit 1
  fi
  ocsp_port=${OCSP_PORT:-$(free_port)}
  ocsp_delegated_port=${OCSP_DELEGATED_PORT:-$(free_port)}
  ocsp_rogue_port=${OCSP_ROGUE_PORT:-$(free_port)}
  echo "$http_port $ocsp_port $ocsp_delegated_port $ocsp_rogue_port" >"$dir/ports"
  make_ca
  publish both
  log "test CA made in $dir (HTTP 127.0.0.1:$http_port, OCSP 127.0.0.1:$ocsp_port)"
}

revoke() {
  local serial=${1:-} reason=${2:-keyCompromise} where=${3:-both} f=""
  [ -n "$serial" ] || usage
  serial=$(echo "$serial" | tr 'A-F' 'a-f')
  local name id s _rest
  while IFS=$'\t' read -r name id s _rest; do
    # The database row is the CA's: the precertificate's file, not the scratch-issued final.
    if [ "$s" = "$serial" ] && [ "$name" != final ] && [ "$name" != unknown ]; then
      f="$dir/$name.pem"
      break
    fi
  done <"$dir/certs.tsv"
  if [ -z "$f" ]; then
    log "no certificate with serial $serial in the CA's database ($dir/certs.tsv)"
    exit 1
  fi
  ossl ca -config "$dir/ca/openssl.cnf" -revoke "$f" -crl_reason "$reason"
  publish "$where"
  log "revoked $serial ($reason), published to $where"
}

# One OCSP request on stdin, its DER response on stdout, signed as SIGNER says: issuer (the
# intermediate itself), delegated or rogue.
respond() {
  local rsigner
  case "${1:-}" in
    issuer) rsigner=intermediate ;;
    delegated) rsigner=ocsp-delegated ;;
    rogue) rsigner=ocsp-rogue ;;
    *) usage ;;
  esac
  exec openssl ocsp -index "$dir/ocsp/index.txt" -CA "$dir/intermediate.pem" \
    -rsigner "$dir/$rsigner.pem" -rkey "$dir/$rsigner.key" -ndays "$OCSP_DAYS" \
    -reqin /dev/stdin -respout /dev/stdout
}

case "$cmd" in
  start) [ $# -eq 2 ] || usage; start ;;
  stop) [ $# -eq 2 ] || usage ;;
  revoke) shift 2; revoke "$@" ;;
  publish) shift 2; publish "$@" ;;
  respond) [ $# -eq 3 ] || usage; respond "$3" ;;
  *) usage ;;
esac
