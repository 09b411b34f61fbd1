#!/usr/bin/env bash
# A private, loopback-only Postfix SMTP server for the tests.
#
#   MAILDIR_BASE=/path/to/mail bash scripts/postfix.sh start DIR
#                                      # install if missing, configure in DIR, start, wait
#   bash scripts/postfix.sh stop DIR   # SIGTERM the master, wait until it and the port are gone
#   bash scripts/postfix.sh kill DIR   # SIGKILL the master's whole process group (a crash)
#
# Everything lives in DIR: the configuration directory DIR/etc (main.cf, master.cf, the lookup
# tables), the queue (DIR/queue) and data (DIR/data) directories, the log (postfix.log, through
# Postfix's own postlogd: no syslog needed), the output of `postfix start` (postfix.stderr) and
# postfix.pid (the master).
#
# Mail for cpr, other, desk, oncall and reporter at example-ca.test (USERS below) is delivered
# by Postfix's virtual(8) agent into the Maildir++ INBOX $MAILDIR_BASE/<local part>/ (new, cur,
# tmp; created when missing; mail for cpr-junk into cpr's Junk folder, as a junk filter would), as the owner of MAILDIR_BASE. Tests hand the Dovecot of
# scripts/dovecot.sh its DIR/mail (owned by nobody:nogroup when run as root), so Dovecot serves
# over IMAP what Postfix delivered. MAILDIR_BASE is required on the first start and kept in
# DIR/maildir_base for restarts. Its owner must not be root: virtual(8) refuses uids below
# virtual_minimum_uid (100).
#
# Refused at RCPT, with a permanent 550: refuse@example-ca.test ("550 5.1.1 ... refused for the
# test", from the regexp: table DIR/etc/recipient_access: edit it and restart, or run
# `postfix -c DIR/etc reload`, to refuse others), any other local part at example-ca.test
# ("User unknown in virtual mailbox table"), and every other domain ("no outside delivery in
# tests"): mydestination and relay_domains are empty and every transport but virtual is
# error:, so nothing can leave the machine. Nothing listens anywhere but 127.0.0.1.
#
# Ports: SMTP_PORT (plain, STARTTLS offered) and SMTPS_PORT (implicit TLS) from the
# environment; otherwise those recorded in DIR/ports by an earlier start (so a restart keeps
# them); otherwise free ones chosen here. TLS uses a self-signed certificate for 127.0.0.1 and
# localhost, DIR/cert.pem, which is also the test's CA file.
#
# Postfix's master must start as root (it is what CI and the dev machines run as); its daemons
# drop to the `postfix` user and the `postdrop` group, which Debian's package creates. The
# package is installed with debconf's "No configuration" and with services kept from starting
# (here and in scripts/test.sh), so installing it starts nothing. A system-wide Postfix someone
# runs on purpose is left alone: the private instances here use their own ports.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|kill DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

log() { echo "postfix.sh: $*" >&2; }
# free_port, listening, alive, self_signed_cert
. "$(dirname "${BASH_SOURCE[0]}")/loopback.sh"

# The local parts at example-ca.test that have a mailbox (the Dovecot users cpr and other, and
# the CA's other addresses the tests write to). Mail for any other is refused at RCPT.
USERS="cpr other desk oncall reporter"

# Install Debian's Postfix when it is missing. Serialised with flock: parallel tests may all
# try at once, and apt/dpkg hold exclusive locks.
ensure_installed() {
  if command -v postfix >/dev/null 2>&1 && [ -x /usr/lib/postfix/sbin/virtual ]; then
    return
  fi
  (
    flock 9
    if ! command -v postfix >/dev/null 2>&1 || [ ! -x /usr/lib/postfix/sbin/virtual ]; then
      log "installing postfix with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      # "No configuration": no /etc/postfix/main.cf, so the system-wide Postfix has nothing to
      # start with.
      echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
      # And keep the package's scripts from starting any service while installing (Docker
      # images often have this file already; leave theirs alone).
      local policy=""
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# Written by scripts/postfix.sh for the install; removed after.\nexit 101\n' >"$policy"
        chmod 755 "$policy"
      fi
      local rc=0
      apt-get update -qq -o DPkg::Lock::Timeout=300 || rc=$?
      [ "$rc" -ne 0 ] || apt-get install -y -qq -o DPkg::Lock::Timeout=300 postfix >&2 || rc=$?
      [ -z "$policy" ] || rm -f "$policy"
      [ "$rc" -eq 0 ] || exit "$rc"
    fi
  ) 9>/tmp/cprwatch-postfix-install.lock
}

master_pid() {
  [ -f "$dir/postfix.pid" ] && cat "$dir/postfix.pid"
}

write_config() {
  local smtp_port=$1 smtps_port=$2 base=$3 uid gid
  uid=$(stat -c %u "$base")
  gid=$(stat -c %g "$base")
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  # Postfix's daemons run as the postfix user and must reach the queue below DIR.
  chmod 755 "$dir"
  # The queue and data directories belong to root and the mail owner; `postfix start` creates
  # their subdirectories with the right owners and modes (post-install create-missing).
  chown root:root "$dir/queue"
  chown postfix:postfix "$dir/data"
  self_signed_cert "$dir"

  # virtual(8) allows no regexp substitution in its mailbox map, so the users are listed:
  # texthash needs no postmap. The trailing slash means Maildir to virtual(8).
  local u
  {
    echo "# Written by scripts/postfix.sh: user@example-ca.test -> \$MAILDIR_BASE/user/ (a Maildir)."
    for u in $USERS; do
      echo "$u@example-ca.test $u/"
    done
    # A filter that junks what it is sent: cpr's Junk folder (the canary tests).
    echo "cpr-junk@example-ca.test cpr/.Junk/"
  } >"$dir/etc/virtual_mailboxes"
  cat >"$dir/etc/recipient_access" <<'EOF'
# Written by scripts/postfix.sh: recipients refused at RCPT, for tests of permanent failures.
/^refuse@example-ca\.test$/ 550 5.1.1 refused for the test
EOF

  cat >"$dir/etc/main.cf" <<EOF
# Written by scripts/postfix.sh for tests. Loopback only; nothing is delivered off the machine.
compatibility_level = 3.6
config_directory = $dir/etc
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop

maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir

myhostname = mail.example-ca.test
mydomain = example-ca.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtp_bind_address = 127.0.0.1
smtpd_banner = \$myhostname ESMTP cprwatch-test
biff = no
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no

# Only example-ca.test is ours; everything else bounces at once instead of leaving.
virtual_mailbox_domains = example-ca.test
virtual_mailbox_base = $base
virtual_mailbox_maps = texthash:$dir/etc/virtual_mailboxes
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_transport = virtual
default_transport = error:no outside delivery in tests
relay_transport = error:no outside delivery in tests
local_transport = error:no local delivery in tests

smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access regexp:$dir/etc/recipient_access
# STARTTLS offered on the plain port, and the only way in on the implicit-TLS one.
smtpd_tls_cert_file = $dir/cert.pem
smtpd_tls_key_file = $dir/key.pem
smtpd_tls_security_level = may
# The Received header says whether the message came over TLS (tests check it did).
smtpd_tls_received_header = yes
smtp_tls_security_level = none
# Tests look at a failure right away: no waiting in the queue for a retry.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
EOF

  # No chroot anywhere (the queue is not set up as one). Only what a loopback SMTP server
  # with virtual delivery needs; no smtp client, no local delivery.
  cat >"$dir/etc/master.cf" <<EOF
# Written by scripts/postfix.sh for tests.
# service     type  private unpriv chroot wakeup maxproc command
127.0.0.1:$smtp_port inet n - n - - smtpd
127.0.0.1:$smtps_port inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
pickup        unix  n       -      n      60     1       pickup
cleanup       unix  n       -      n      -      0       cleanup
qmgr          unix  n       -      n      300    1       qmgr
rewrite       unix  -       -      n      -      -       trivial-rewrite
bounce        unix  -       -      n      -      0       bounce
defer         unix  -       -      n      -      0       bounce
trace         unix  -       -      n      -      0       bounce
verify        unix  -       -      n      -      1       verify
flush         unix  n       -      n      1000?  0       flush
proxymap      unix  -       -      n      -      -       proxymap
showq         unix  n       -      n      -      -       showq
error         unix  -       -      n      -      -       error
retry         unix  -       -      n      -      -       error
discard       unix  -       -      n      -      -       discard
anvil         unix  -       -      n      -      1       anvil
tlsmgr        unix  -       -      n      1000?  1       tlsmgr
scache        unix  -       -      n      -      1       scache
postlog       unix-dgram n  -      n      -      1       postlogd
virtual       unix  -       n      n      -      -       virtual
EOF
}

start() {
  if [ "$(id -u)" -ne 0 ]; then
    log "Postfix's master must be started as root"
    exit 1
  fi
  ensure_installed
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local old
  old=$(master_pid || true)
  if alive "$old"; then
    log "already running (pid $old) in $dir"
    exit 1
  fi

  local smtp_port=${SMTP_PORT:-} smtps_port=${SMTPS_PORT:-} base=${MAILDIR_BASE:-}
  if [ -f "$dir/ports" ] && [ -z "$smtp_port" ]; then
    read -r smtp_port smtps_port <"$dir/ports"
  fi
  [ -n "$smtp_port" ] || smtp_port=$(free_port)
  [ -n "$smtps_port" ] && [ "$smtps_port" != "$smtp_port" ] || smtps_port=$(free_port)
  echo "$smtp_port $smtps_port" >"$dir/ports"
  if [ -z "$base" ] && [ -f "$dir/maildir_base" ]; then
    base=$(cat "$dir/maildir_base")
  fi
  if [ -z "$base" ] || [ ! -d "$base" ]; then
    log "MAILDIR_BASE must name an existing directory (got '${base}')"
    exit 1
  fi
  base=$(cd "$base" && pwd)
  echo "$base" >"$dir/maildir_base"

  write_config "$smtp_port" "$smtps_port" "$base"

  # A crashed predecessor's children may still hold the port for a moment.
  local i
  for i in $(seq 1 100); do
    listening "$smtp_port" || listening "$smtps_port" || break
    sleep 0.1
  done

  # A crashed master leaves its pid files behind: harmless, Postfix goes by the lock on
  # DIR/data/master.lock, which died with it (a zombie holds no lock).
  # Postfix keeps the stdio it was started with: hand it none of ours, or a caller reading
  # this script's output (a test's Command::output) would wait for Postfix to exit.
  if ! postfix -c "$dir/etc" start </dev/null >>"$dir/postfix.stderr" 2>&1; then
    log "postfix refused to start:"
    tail -n 30 "$dir/postfix.stderr" "$dir/postfix.log" >&2 || true
    exit 1
  fi
  local pid=""
  for i in $(seq 1 100); do
    if [ -s "$dir/queue/pid/master.pid" ]; then
      pid=$(tr -dc 0-9 <"$dir/queue/pid/master.pid")
      if alive "$pid" && listening "$smtp_port" && listening "$smtps_port"; then
        echo "$pid" >"$dir/postfix.pid"
        log "started pid $pid, smtp 127.0.0.1:$smtp_port, smtps 127.0.0.1:$smtps_port, mail into $base ($(postconf -c "$dir/etc" -h mail_version))"
        return
      fi
    fi
    sleep 0.1
  done
  log "Postfix did not come up within 10 s; its output and log:"
  tail -n 30 "$dir/postfix.stderr" "$dir/postfix.log" >&2 || true
  alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null
  exit 1
}

# Wait (at most 10 s) until the port is free: the smtpd processes that share the master's
# listening socket exit shortly after it.
wait_port_free() {
  local port i
  [ -f "$dir/ports" ] || return 0
  read -r port _ <"$dir/ports"
  for i in $(seq 1 100); do
    listening "$port" || return 0
    sleep 0.1
  done
}

stop() {
  local pid i
  pid=$(master_pid || true)
  if ! alive "$pid"; then
    rm -f "$dir/postfix.pid"
    return
  fi
  # What `postfix stop` does, without its checks: the master terminates its children.
  kill -TERM "$pid"
  for i in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "pid $pid ignored SIGTERM for 10 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
  wait_port_free
  rm -f "$dir/postfix.pid"
}

crash() {
  local pid i
  pid=$(master_pid || true)
  alive "$pid" || return 0
  # The master is a session leader (it daemonised with setsid): its group is every Postfix
  # process of this instance, so every connection drops at once, as in a crash.
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  for i in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
  done
  rm -f "$dir/postfix.pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  kill) crash ;;
  *) usage ;;
esac
