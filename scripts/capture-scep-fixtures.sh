#!/usr/bin/env bash
# Captures SCEP PKIOperation messages from real clients into test/fixtures/scep/.
#
# 1. Makes a throwaway fixture CA and RA with openssl (RA: digitalSignature + keyEncipherment, key as
#    unencrypted PKCS#8 so tests can `softhsm2-util --import` it).
# 2. Runs test/support/scep-capture-server.ts on loopback for each client; it saves every PKIOperation
#    body. In --pending mode it answers PENDING (signed with the fixture RA) so the client polls, and
#    the poll message is captured too.
# 3. Clients: micromdm scepclient (Debian `scep`) and certmonger's scep-submit (Debian `certmonger`,
#    run by the certmonger daemon on a private session bus with an isolated HOME).
#
# Usage: scripts/capture-scep-fixtures.sh [OUT_DIR]   (default test/fixtures/scep)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/test/fixtures/scep}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$OUT"
# DES-CBC (scepclient) needs OpenSSL's legacy provider in the capture server's decoder.
export NODE_OPTIONS="--openssl-legacy-provider"
TSX="$ROOT/node_modules/.bin/tsx"
CHALLENGE="secret"
CN="laptop-001"

# --- Fixture CA and RA ---------------------------------------------------------------------------
cat >"$WORK/ext.cnf" <<'EOF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ra]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OUT/ca.key.pem" 2>/dev/null
openssl req -new -x509 -key "$OUT/ca.key.pem" -subj "/O=Fixture/CN=SCEP Fixture CA" -days 3650 -sha256 \
  -extensions ca -config "$WORK/ext.cnf" -out "$OUT/ca.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OUT/ra.pk8"
openssl req -new -key "$OUT/ra.pk8" -subj "/O=Fixture/CN=SCEP Fixture RA" -out "$WORK/ra.csr"
openssl x509 -req -in "$WORK/ra.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key.pem" -set_serial 0x1001 -days 3650 \
  -sha256 -extfile "$WORK/ext.cnf" -extensions ra -out "$OUT/ra.pem" 2>/dev/null
openssl x509 -in "$OUT/ra.pem" -outform DER -out "$OUT/ra.der"
openssl x509 -in "$OUT/ca.pem" -outform DER -out "$OUT/ca.der"
# GetCACert answer: certs-only PKCS#7, RA first, then the CA.
openssl crl2pkcs7 -nocrl -certfile "$OUT/ra.pem" -certfile "$OUT/ca.pem" -outform DER -out "$OUT/getcacert.p7.der"

# Starts the capture server; sets PORT. Extra arguments go to the server.
start_server() {
  local prefix="$1"
  shift
  local log="$WORK/server-$prefix.log"
  : >"$WORK/port-$prefix" # exists before the background job opens it
  "$TSX" "$ROOT/test/support/scep-capture-server.ts" --out "$WORK/capture" --prefix "$prefix" \
    --ca-ra-p7 "$OUT/getcacert.p7.der" "$@" >"$WORK/port-$prefix" 2>"$log" &
  PIDS+=("$!")
  SERVER_PID="$!"
  for _ in $(seq 1 100); do
    PORT="$(sed -n 's/^PORT //p' "$WORK/port-$prefix")"
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "capture server did not start" >&2
  cat "$log" >&2
  exit 1
}

# Waits until a file matching the glob exists (up to $2 seconds).
wait_for() {
  local pattern="$1" seconds="$2"
  for _ in $(seq 1 $((seconds * 10))); do
    compgen -G "$pattern" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# --- micromdm scepclient: PKCSReq, then (PENDING) a GetCertInitial poll ---------------------------
mkdir -p "$WORK/scepclient"
openssl genrsa -traditional -out "$WORK/scepclient/key.pem" 2048 2>/dev/null
start_server scepclient --pending --ra-cert "$OUT/ra.pem" --ra-key "$OUT/ra.pk8"
(
  cd "$WORK/scepclient"
  # scepclient polls forever on PENDING; the server answers FAILURE to the poll, which ends it.
  timeout 60 scepclient -server-url "http://127.0.0.1:$PORT/scep" -challenge "$CHALLENGE" \
    -private-key key.pem -cn "$CN" -certificate cert.pem >client.log 2>&1 || true
)
kill "$SERVER_PID" 2>/dev/null || true
cp "$WORK/scepclient/key.pem" "$OUT/scepclient-key.pem"
cp "$WORK/capture/scepclient-1-post.der" "$OUT/scepclient-pkcsreq.der"
# On PENDING, scepclient 2.1.0 polls by re-sending the very same PKCSReq bytes (no CertPoll): record it.
if cmp -s "$WORK/capture/scepclient-1-post.der" "$WORK/capture/scepclient-2-post.der"; then
  echo "scepclient re-sent the identical PKCSReq as its poll" >"$WORK/scepclient-poll.txt"
fi

# --- certmonger: PKCSReq (GET), then (PENDING) a GetCertInitial poll ------------------------------
CM="$WORK/certmonger"
mkdir -p "$CM/home" "$CM/requests" "$CM/cas" "$CM/local" "$CM/tmp" "$CM/config"
# As root certmonger keeps its state in /var/lib/certmonger even on the session bus: these variables
# keep this throwaway daemon's CAs and requests in the work directory.
export CERTMONGER_REQUESTS_DIR="$CM/requests" CERTMONGER_CAS_DIR="$CM/cas" CERTMONGER_LOCAL_CA_DIR="$CM/local" \
  CERTMONGER_TMPDIR="$CM/tmp" CERTMONGER_CONFIG_DIR="$CM/config" CERTMONGER_SYSTEM_LOCK_FILE="$CM/lock"
start_server certmonger --pending --ra-cert "$OUT/ra.pem" --ra-key "$OUT/ra.pk8"
HOME="$CM/home" XDG_CONFIG_HOME="$CM/home/.config" XDG_DATA_HOME="$CM/home/.local/share" \
  timeout 120 dbus-run-session -- bash -c '
    set -u
    certmonger -s -n -d 3 >"$1/daemon.log" 2>&1 &
    daemon=$!
    sleep 1
    getcert add-scep-ca -s -c fixture -u "http://127.0.0.1:$2/scep" >"$1/add-ca.log" 2>&1
    sleep 2
    getcert request -s -c fixture -k "$1/key.pem" -f "$1/cert.pem" -N "CN=$3" -L "$4" -I fixture-req \
      >"$1/request.log" 2>&1
    # After PENDING certmonger would poll only hours later: wait for the first message, let the
    # daemon store its state (CA_WORKING), and send its prepared GetCertInitial below.
    for _ in $(seq 1 300); do
      grep -qs "^state=CA_WORKING" "$1"/requests/* && break
      sleep 0.2
    done
    getcert list -s >>"$1/request.log" 2>&1
    kill "$daemon"
  ' _ "$CM" "$PORT" "$CN" "$CHALLENGE" || true
# The GetCertInitial pkiMessage certmonger generated with the PKCSReq (request file key scep_gic,
# a PEM block with continuation lines), sent by certmonger's own helper as its poll does.
awk '/^scep_gic=/{sub(/^scep_gic=/, ""); print; on=1; next} on && /^ /{sub(/^ /, ""); print; next} {on=0}' \
  "$CM"/requests/* >"$CM/gic.pem"
if [ -s "$CM/gic.pem" ]; then
  /usr/lib/certmonger/scep-submit -u "http://127.0.0.1:$PORT/scep" -r "$OUT/ra.pem" -N "$OUT/ca.pem" \
    -g "$CM/gic.pem" >>"$CM/request.log" 2>&1 || true
fi
kill "$SERVER_PID" 2>/dev/null || true
cp "$CM/key.pem" "$OUT/certmonger-key.pem"
cp "$WORK/capture/certmonger-1-get.der" "$OUT/certmonger-pkcsreq.der"
for f in "$WORK"/capture/certmonger-2-*.der; do
  [ -f "$f" ] && cp "$f" "$OUT/certmonger-certpoll.der"
done

# Signer certificates are inside the messages; export them as PEM for the tests' openssl calls.
for msg in scepclient-pkcsreq certmonger-pkcsreq; do
  openssl pkcs7 -inform DER -in "$OUT/$msg.der" -print_certs 2>/dev/null |
    sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' >"$OUT/${msg%-pkcsreq}-signer.pem"
done
# ca.key.pem stays: tests issue dummy device certificates with it (throwaway fixture CA).

echo "captured into $OUT:"
ls -l "$OUT"
echo "--- scepclient log"
cat "$WORK/scepclient/client.log" || true
echo "--- certmonger request log"
cat "$CM/request.log" || true
cat "$WORK/scepclient-poll.txt" 2>/dev/null || true
echo "--- server logs"
cat "$WORK"/server-*.log
