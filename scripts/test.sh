#!/usr/bin/env bash
# The whole test suite, from a clean checkout on a fresh Debian machine.
#
#   bash scripts/test.sh
#
# Installs what the tests need (Debian packages via apt-get, when missing), then runs
# formatting and lint checks and every test. Servers the tests use are started by the tests
# themselves on loopback, in temporary directories, and stopped by them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need. (openssl: the fixture key material is re-derivable with it;
# dovecot-imapd: the real IMAP server the IMAP tests start on loopback via scripts/dovecot.sh;
# postfix: the real SMTP server the mail tests start on loopback via scripts/postfix.sh. It is
# installed unconfigured ("No configuration"), so no system-wide Postfix starts listening;
# chromium and chromium-driver: the real browser the dashboard tests drive headless;
# postgresql: the real database server the PostgreSQL tests start on loopback via
# scripts/postgres.sh. It is installed without the system-wide `main` cluster
# (create_main_cluster = false, below), so nothing listens on port 5432.)
packages=(openssl dovecot-imapd postfix chromium chromium-driver postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # Read by postgresql-common's install: create no cluster of its own (the tests make theirs).
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/cprwatch-no-main.conf
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
