#!/usr/bin/env bash
# Makes sure the system tools the tests and the local stack need are installed, and that the local Postgres
# runs. Idempotent and quiet when everything is already there.
#
#   softhsm2-util                  (softhsm2)    PKCS#11 token for the CA/RA keys
#   scepclient                     (scep)        real SCEP client for interop tests
#   /usr/lib/certmonger/scep-submit (certmonger) second real SCEP client
#   dbus-run-session               (dbus)        certmonger needs a bus
#   openssl                        (openssl)
#   pkcs11-tool                    (opensc)      an independent look at every key's attributes (key custody)
#   chromium                       (chromium)    the operator console's browser tests (driven by playwright-core)
#   promtool                       (prometheus)  checks the alert rules file
#
# As root with apt-get: installs what is missing (one `apt-get update`). Otherwise prints the exact command
# and exits 1.
set -euo pipefail

declare -a missing=()
need() { # need <package> <command-or-absolute-path>
  local pkg=$1 probe=$2
  if [[ $probe == /* ]]; then [[ -x $probe ]] && return 0; else command -v "$probe" >/dev/null 2>&1 && return 0; fi
  missing+=("$pkg")
}
need softhsm2 softhsm2-util
need scep scepclient
need certmonger /usr/lib/certmonger/scep-submit
need dbus dbus-run-session
need openssl openssl
need opensc pkcs11-tool
need chromium /usr/bin/chromium
need prometheus promtool

if ((${#missing[@]} > 0)); then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-system-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null
  else
    echo "ensure-system-deps: missing packages: ${missing[*]}" >&2
    echo "  run: sudo apt-get update && sudo $cmd" >&2
    exit 1
  fi
fi

# Local Postgres: start the Debian cluster if it is installed but down. Only when DATABASE_URL is unset or
# points at this machine; a remote database is not ours to start.
db_url=${DATABASE_URL:-}
if [[ -z $db_url || $db_url == *@127.0.0.1[:/]* || $db_url == *@localhost[:/]* || $db_url == *@127.0.0.1 || $db_url == *@localhost ]]; then
  if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $version && -d /etc/postgresql/$version/main ]] && command -v pg_ctlcluster >/dev/null 2>&1; then
      echo "ensure-system-deps: starting Postgres $version/main"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start
      for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 && break
        sleep 0.5
      done
      pg_isready -q -h 127.0.0.1 || { echo "ensure-system-deps: Postgres did not come up" >&2; exit 1; }
    fi
  fi
fi
