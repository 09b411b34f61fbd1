#!/usr/bin/env bash
# A private, loopback-only Dovecot IMAP server for the tests.
#
#   bash scripts/dovecot.sh start DIR    # install if missing, configure in DIR, start, wait
#   bash scripts/dovecot.sh stop DIR     # SIGTERM the master, wait until it is gone
#   bash scripts/dovecot.sh kill DIR     # SIGKILL the master's whole process group (a crash)
#
# Everything lives in DIR: dovecot.conf, a self-signed certificate (cert.pem, also the test's CA
# file) for 127.0.0.1 and localhost, a passwd-file with the test users (cpr/cpr-secret,
# other/other-secret, and desk, oncall and reporter likewise), Maildir++ mail under
# DIR/mail/<user> (folders INBOX, Junk, Sent), the log
# (dovecot.log), the runtime and state directories, and dovecot.pid (the master).
#
# Ports: IMAP_PORT (plain, STARTTLS offered) and IMAPS_PORT (implicit TLS) from the environment;
# otherwise those recorded in DIR/ports by an earlier start (so a restart keeps them); otherwise
# free ones chosen here. Listeners are bound to 127.0.0.1 only, ever.
#
# Dovecot's master runs as the invoking user (root in CI). Mail access runs as nobody:nogroup
# (as the invoking user when that is not root): Dovecot 2.3's imap refuses mail access as root
# ("Mail access not allowed for root") even with first_valid_uid = 0, and passwd-file refuses
# uid 0. So DIR/mail belongs to that user, and a test that writes Maildir files directly must
# give them the owner of DIR/mail (tests/support/dovecot.rs does). The login and internal
# processes keep Debian's unprivileged dovenull/dovecot users, which the package creates.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|kill DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

log() { echo "dovecot.sh: $*" >&2; }
# free_port, listening, alive, self_signed_cert
. "$(dirname "${BASH_SOURCE[0]}")/loopback.sh"

# Install Debian's IMAP server when it is missing. Serialised with flock: parallel tests may
# all try at once, and apt/dpkg hold exclusive locks.
ensure_installed() {
  if command -v dovecot >/dev/null 2>&1 && [ -x /usr/lib/dovecot/imap ]; then
    return
  fi
  (
    flock 9
    if ! command -v dovecot >/dev/null 2>&1 || [ ! -x /usr/lib/dovecot/imap ]; then
      log "installing dovecot-imapd with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq -o DPkg::Lock::Timeout=300
      apt-get install -y -qq -o DPkg::Lock::Timeout=300 dovecot-imapd >&2
    fi
  ) 9>/tmp/cprwatch-dovecot-install.lock
}

master_pid() {
  [ -f "$dir/dovecot.pid" ] && cat "$dir/dovecot.pid"
}

write_config() {
  local imap_port=$1 imaps_port=$2 mail_user mail_group
  if [ "$(id -u)" -eq 0 ]; then
    mail_user=nobody
    mail_group=nogroup
  else
    mail_user=$(id -un)
    mail_group=$(id -gn)
  fi
  mkdir -p "$dir/run" "$dir/state" "$dir/mail"
  # Dovecot's unprivileged login and auth processes must reach base_dir.
  chmod 755 "$dir" "$dir/run"

  self_signed_cert "$dir"

  # passwd-file: user:password:uid:gid:gecos:home:shell. uid and gid stay empty: mail_uid and
  # mail_gid below apply.
  cat >"$dir/passwd" <<EOF
cpr:{PLAIN}cpr-secret::::$dir/home/cpr::
other:{PLAIN}other-secret::::$dir/home/other::
desk:{PLAIN}desk-secret::::$dir/home/desk::
oncall:{PLAIN}oncall-secret::::$dir/home/oncall::
reporter:{PLAIN}reporter-secret::::$dir/home/reporter::
EOF
  chmod 644 "$dir/passwd"

  # Maildir++: the root is INBOX, subfolders are dot-directories.
  local u f
  for u in cpr other desk oncall reporter; do
    mkdir -p "$dir/home/$u"
    for f in "" .Junk .Sent; do
      mkdir -p "$dir/mail/$u/$f/cur" "$dir/mail/$u/$f/new" "$dir/mail/$u/$f/tmp"
      [ -z "$f" ] || touch "$dir/mail/$u/$f/maildirfolder"
    done
  done
  chown -R "$mail_user:$mail_group" "$dir/mail" "$dir/home"

  cat >"$dir/dovecot.conf" <<EOF
# Written by scripts/dovecot.sh for tests. Loopback only.
protocols = imap
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
instance_name = cprwatch-test-$imap_port

ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login

mail_uid = $mail_user
mail_gid = $mail_group
mail_location = maildir:$dir/mail/%u
# Notice deliveries made behind Dovecot's back (tests write Maildir files directly) quickly.
mailbox_idle_check_interval = 1 secs
mail_max_userip_connections = 100
# Process titles show each session's user and running command ("[cpr 127.0.0.1 IDLE]"), so a
# test can tell when a client is idling instead of sleeping and hoping.
verbose_proctitle = yes

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
    ssl = yes
  }
}
EOF
}

start() {
  ensure_installed
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local old
  old=$(master_pid || true)
  if alive "$old"; then
    log "already running (pid $old) in $dir"
    exit 1
  fi

  local imap_port=${IMAP_PORT:-} imaps_port=${IMAPS_PORT:-}
  if [ -f "$dir/ports" ] && [ -z "$imap_port" ]; then
    read -r imap_port imaps_port <"$dir/ports"
  fi
  [ -n "$imap_port" ] || imap_port=$(free_port)
  [ -n "$imaps_port" ] || imaps_port=$(free_port)
  echo "$imap_port $imaps_port" >"$dir/ports"

  write_config "$imap_port" "$imaps_port"

  # A crashed predecessor's children may still hold the ports for a moment.
  local i
  for i in $(seq 1 100); do
    listening "$imap_port" || listening "$imaps_port" || break
    sleep 0.1
  done

  # A crashed master may linger as an unreaped zombie, which Dovecot's own pid-file check
  # takes for a running instance.
  if [ -f "$dir/run/master.pid" ] && ! alive "$(cat "$dir/run/master.pid")"; then
    rm -f "$dir/run/master.pid"
  fi
  # Dovecot keeps the stdio it was started with: hand it none of ours, or a caller reading
  # this script's output (a test's Command::output) would wait for Dovecot to exit.
  if ! dovecot -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.stderr" 2>&1; then
    log "dovecot refused to start:"
    cat "$dir/dovecot.stderr" >&2
    exit 1
  fi
  local pid=""
  for i in $(seq 1 100); do
    if [ -s "$dir/run/master.pid" ]; then
      pid=$(cat "$dir/run/master.pid")
      if listening "$imap_port" && listening "$imaps_port"; then
        echo "$pid" >"$dir/dovecot.pid"
        log "started pid $pid, imap 127.0.0.1:$imap_port, imaps 127.0.0.1:$imaps_port ($(dovecot --version))"
        return
      fi
    fi
    sleep 0.1
  done
  log "Dovecot did not come up within 10 s; its output and log:"
  tail -n 30 "$dir/dovecot.stderr" "$dir/dovecot.log" >&2 || true
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  exit 1
}

stop() {
  local pid i
  pid=$(master_pid || true)
  if ! alive "$pid"; then
    rm -f "$dir/dovecot.pid"
    return
  fi
  kill -TERM "$pid"
  for i in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "pid $pid ignored SIGTERM for 10 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
  rm -f "$dir/dovecot.pid"
}

crash() {
  local pid i
  pid=$(master_pid || true)
  alive "$pid" || return 0
  # The master is a session leader (it daemonised with setsid): its group is every Dovecot
  # process of this instance, so every connection drops at once, as in a crash.
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  for i in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
  done
  rm -f "$dir/dovecot.pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  kill) crash ;;
  *) usage ;;
esac
