#!/usr/bin/env bash
# A private, loopback-only PostgreSQL server for the tests (issue 17: the PostgreSQL store).
#
#   PG_PASSWORD=secret bash scripts/postgres.sh start DIR PORT   # (or PORT in PG_PORT)
#                                       # install if missing, initdb in DIR (first start), start, wait
#   bash scripts/postgres.sh stop DIR   # fast shutdown (SIGINT) of the postmaster, wait until gone
#   bash scripts/postgres.sh restart DIR    # stop, then start again on the same port and data
#   bash scripts/postgres.sh kill DIR   # SIGKILL the postmaster's whole process group (a crash)
#
# Everything lives in DIR, which is made to belong to the `postgres` system user (initdb refuses
# root, and so does the server): the cluster (DIR/data), the Unix socket directory (DIR/socket),
# the server's log (DIR/postgres.log), a self-signed certificate for 127.0.0.1 and localhost
# (DIR/cert.pem, also the test's CA file, and DIR/key.pem), the port (DIR/port, so a restart
# keeps it) and postgres.pid (the postmaster this script started).
#
# On the first start, the role `cprwatch` with the password in PG_PASSWORD (read from the
# environment, never from the command line, so `ps` does not show it) is made the owner of a
# database `cprwatch`. Authentication (pg_hba.conf, written whole): that role over TCP from
# 127.0.0.1 with scram-sha-256 only (plain or TLS: the server offers TLS with DIR/cert.pem), and
# the `postgres` superuser over the private socket by peer (for this script). Nothing is `trust`;
# nothing else may connect. The server listens on 127.0.0.1 only, on PORT and in DIR/socket.
# fsync is off: a test cluster needs no durability across a power cut, only across a crash of
# the server (`kill`), which fsync does not affect.
#
# The system-wide cluster Debian's package may create (`main`, port 5432, pg_ctlcluster) is
# never touched: this script runs the binaries directly (initdb, pg_ctl) and refuses port 5432.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR PORT | stop DIR | restart DIR | kill DIR" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2

log() { echo "postgres.sh: $*" >&2; }
# free_port, listening, alive, self_signed_cert
. "$(dirname "${BASH_SOURCE[0]}")/loopback.sh"

# The newest installed server's binaries (Debian puts each major version under its own dir).
bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] || return 1
  echo "$d"
}

# Install Debian's server when it is missing, without the system-wide `main` cluster: with
# create_main_cluster = false postgresql-common's install creates none, and a policy-rc.d keeps
# the package's scripts from starting a service. Serialised with flock: parallel tests may all
# try at once, and apt/dpkg hold exclusive locks.
ensure_installed() {
  bindir >/dev/null && return
  (
    flock 9
    if ! bindir >/dev/null; then
      log "installing postgresql with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      mkdir -p /etc/postgresql-common/createcluster.d
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/cprwatch-no-main.conf
      local policy=""
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# Written by scripts/postgres.sh for the install; removed after.\nexit 101\n' >"$policy"
        chmod 755 "$policy"
      fi
      local rc=0
      apt-get update -qq -o DPkg::Lock::Timeout=300 || rc=$?
      [ "$rc" -ne 0 ] || apt-get install -y -qq -o DPkg::Lock::Timeout=300 postgresql >&2 || rc=$?
      [ -z "$policy" ] || rm -f "$policy"
      [ "$rc" -eq 0 ] || exit "$rc"
    fi
  ) 9>/tmp/cprwatch-postgres-install.lock
}

as_postgres() { runuser -u postgres -- "$@"; }

server_pid() {
  [ -f "$dir/postgres.pid" ] && cat "$dir/postgres.pid"
}

# Whether any process of the postmaster's group (it and its backends) is still there.
group_alive() {
  [ -n "${1:-}" ] && kill -0 -- "-$1" 2>/dev/null
}

write_config() {
  local port=$1
  self_signed_cert "$dir"
  chown postgres:postgres "$dir/cert.pem" "$dir/key.pem"
  mkdir -p "$dir/socket"
  chown postgres:postgres "$dir/socket"
  # Rewritten on every start (postgresql.conf includes it), so the port and paths are current.
  cat >"$dir/data/cprwatch.conf" <<EOF
# Written by scripts/postgres.sh for tests. Loopback only.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/socket'
ssl = on
ssl_cert_file = '$dir/cert.pem'
ssl_key_file = '$dir/key.pem'
password_encryption = 'scram-sha-256'
fsync = off
full_page_writes = off
max_connections = 50
shared_buffers = 32MB
EOF
  cat >"$dir/data/pg_hba.conf" <<'EOF'
# Written by scripts/postgres.sh for tests: the superuser over the private socket by peer, the
# test role over loopback TCP by password (scram-sha-256). Nothing else, nothing `trust`.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer
host    cprwatch  cprwatch  127.0.0.1/32   scram-sha-256
EOF
  chown postgres:postgres "$dir/data/cprwatch.conf" "$dir/data/pg_hba.conf"
}

start() {
  local port=${1:-}
  ensure_installed
  local bin
  bin=$(bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local old
  old=$(server_pid || true)
  if alive "$old"; then
    log "already running (pid $old) in $dir"
    exit 1
  fi
  if [ -z "$port" ] && [ -f "$dir/port" ]; then
    port=$(cat "$dir/port")
  fi
  [ -n "$port" ] || port=$(free_port)
  if [ "$port" = 5432 ]; then
    log "port 5432 is the system-wide cluster's: give the test server a port of its own"
    exit 2
  fi
  echo "$port" >"$dir/port"
  chown postgres:postgres "$dir"
  chmod 700 "$dir"

  local fresh=""
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    if [ -z "${PG_PASSWORD:-}" ]; then
      log "PG_PASSWORD must be set on the first start (the password of the role cprwatch)"
      exit 2
    fi
    fresh=1
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale \
      --auth-local=peer --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
      log "initdb failed:"
      cat "$dir/initdb.log" >&2
      exit 1
    }
    echo "include 'cprwatch.conf'" >>"$dir/data/postgresql.conf"
  fi
  write_config "$port"

  # A crashed predecessor's port may linger for a moment.
  local i
  for i in $(seq 1 100); do
    listening "$port" || break
    sleep 0.1
  done

  # pg_ctl -w waits until the server accepts connections; the server's output goes to the log,
  # and it gets none of our stdio (a caller reading this script's output would wait for it).
  if ! as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
    </dev/null >>"$dir/pg_ctl.log" 2>&1; then
    log "PostgreSQL did not start; pg_ctl's output and the server log:"
    tail -n 30 "$dir/pg_ctl.log" "$dir/postgres.log" >&2 || true
    exit 1
  fi
  local pid
  pid=$(head -n 1 "$dir/data/postmaster.pid")
  echo "$pid" >"$dir/postgres.pid"
  for i in $(seq 1 100); do
    listening "$port" && break
    sleep 0.1
  done
  if ! listening "$port"; then
    log "PostgreSQL (pid $pid) does not listen on 127.0.0.1:$port"
    tail -n 30 "$dir/postgres.log" >&2 || true
    exit 1
  fi

  if [ -n "$fresh" ]; then
    # The password comes from the environment (psql's \getenv), not from a command line.
    if ! PG_PASSWORD=$PG_PASSWORD as_postgres "$bin/psql" -X -q \
      -h "$dir/socket" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      >>"$dir/setup.log" 2>&1 <<'SQL'; then
\getenv pw PG_PASSWORD
CREATE ROLE cprwatch LOGIN PASSWORD :'pw';
CREATE DATABASE cprwatch OWNER cprwatch;
SQL
      log "could not create the role and database cprwatch:"
      cat "$dir/setup.log" >&2
      exit 1
    fi
  fi
  log "started pid $pid, 127.0.0.1:$port, data $dir/data ($("$bin/postgres" --version))"
}

stop() {
  local pid i
  pid=$(server_pid || true)
  if ! alive "$pid"; then
    rm -f "$dir/postgres.pid"
    return
  fi
  # SIGINT is PostgreSQL's fast shutdown: it ends open sessions instead of waiting for the
  # clients to leave (SIGTERM, the "smart" shutdown, would wait on a test's open connection).
  kill -INT "$pid"
  for i in $(seq 1 300); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "pid $pid did not shut down within 30 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
  rm -f "$dir/postgres.pid"
}

crash() {
  local pid i
  pid=$(server_pid || true)
  alive "$pid" || return 0
  # pg_ctl starts the postmaster in a session of its own: its group is this server's every
  # process, so the backends die with it, as in a crash of the machine (an orphaned backend
  # would hold the shared memory and keep the next start from running).
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  for i in $(seq 1 100); do
    group_alive "$pid" || break
    sleep 0.1
  done
  rm -f "$dir/postgres.pid"
}

case "$cmd" in
  start) start "${3:-${PG_PORT:-}}" ;;
  stop) stop ;;
  restart)
    stop
    start ""
    ;;
  kill) crash ;;
  *) usage ;;
esac
