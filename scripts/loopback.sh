# Helpers shared by the test servers' scripts (scripts/dovecot.sh, scripts/postfix.sh), sourced
# by them: free loopback ports, whether one is listened on, whether a pid is alive, and the
# self-signed certificate a server presents. Expects the caller's `log` function.

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! listening "$p"; then
      echo "$p"
      return
    fi
  done
  log "no free port found"
  exit 1
}

# Whether something listens on 127.0.0.1:PORT. Read from the kernel's socket table rather than
# by connecting: a probe connection makes Dovecot start a login process that then delays its
# shutdown by 5 s (waiting on the stats service that is already gone), and is a session in
# Postfix's log and a busy smtpd process.
listening() {
  local hex
  hex=$(printf '0100007F:%04X' "$1")
  awk -v a="$hex" '$2 == a && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
}

# Running, and not a zombie: the daemonised master's parent is whatever reaps orphans here, which
# may take its time, and a zombie holds no port and no file.
alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# A self-signed certificate for 127.0.0.1 and localhost in DIR (cert.pem, which is also the
# test's CA file, and key.pem, mode 0600), unless DIR already has one.
self_signed_cert() {
  local d=$1
  [ -f "$d/cert.pem" ] && return
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
  chmod 600 "$d/key.pem"
}
