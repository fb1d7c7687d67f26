# shellcheck shell=bash disable=SC2034  # the settings below are used by the scripts that source this
# Shared settings and helpers for scripts/services/{install,start,stop}.sh.
# Sourced, not executed. Every value can be overridden from the environment.

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SERVICES_CACHE="${RECOMIND_SERVICES_CACHE:-$REPO/.cache/services}"   # downloaded jars
SERVICES_DIR="${RECOMIND_SERVICES_DIR:-$REPO/.services}"             # data, logs, pids
SERVICES_TIMEOUT="${RECOMIND_SERVICES_TIMEOUT:-90}"                  # seconds to wait for ready

ALL_SERVICES=(postgres mariadb redis kafka s3)

# Ports: all non-default, all bound to 127.0.0.1 only, and all below Linux's ephemeral range
# (32768-60999): a port in that range can be taken by any outgoing connection (seen: a test run's
# client held 55432 just as PostgreSQL tried to bind it).
PG_PORT="${RECOMIND_PG_PORT:-25432}"
MYSQL_PORT="${RECOMIND_MYSQL_PORT:-23306}"
REDIS_PORT="${RECOMIND_REDIS_PORT:-26379}"
KAFKA_PORT="${RECOMIND_KAFKA_PORT:-27092}"
KAFKA_CONTROLLER_PORT="${RECOMIND_KAFKA_CONTROLLER_PORT:-27093}"
S3_PORT="${RECOMIND_S3_PORT:-28080}"

# Credentials (throwaway test servers).
DB_NAME=recomind
DB_USER=recomind
DB_PASSWORD=recomind
S3_ACCESS_KEY="${RECOMIND_S3_ACCESS_KEY:-recomind}"
S3_SECRET_KEY="${RECOMIND_S3_SECRET_KEY:-recomind-secret}"
S3_BUCKET="${RECOMIND_S3_BUCKET:-recomind-lake}"

# JVM sizes.
KAFKA_HEAP="${RECOMIND_KAFKA_HEAP:--Xms64m -Xmx512m}"
S3_HEAP="${RECOMIND_S3_HEAP:--Xms32m -Xmx256m}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

APT_UPDATED=0

# apt_install PKG...: install with apt-get; on failure run `apt-get update` once and retry.
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "installing $* needs root (apt-get)"
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends "$@")
  log "apt-get install $*"
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null; then
    [ "$APT_UPDATED" -eq 0 ] || die "apt-get install $* failed"
    log "apt-get install failed; running apt-get update once and retrying"
    apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null
    APT_UPDATED=1
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null || die "apt-get install $* failed"
  fi
}

# Accept "mysql" as an alias of "mariadb", "pg"/"postgresql" of "postgres" and "s3proxy" of "s3";
# "all" or nothing = every service.
parse_services() {
  local out=() name
  [ $# -eq 0 ] && set -- all
  for name in "$@"; do
    case "$name" in
      all) out+=("${ALL_SERVICES[@]}") ;;
      postgres|postgresql|pg) out+=(postgres) ;;
      mariadb|mysql) out+=(mariadb) ;;
      redis) out+=(redis) ;;
      kafka) out+=(kafka) ;;
      s3|s3proxy) out+=(s3) ;;
      *) die "unknown service '$name' (expected: all ${ALL_SERVICES[*]})" ;;
    esac
  done
  printf '%s\n' "${out[@]}" | awk '!seen[$0]++'
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuse to start when the port is already taken (by another instance or program).
require_free_port() {
  local port=$1 var=$2
  if port_open "$port"; then
    die "port $port is already in use (ss -ltnp 'sport = :$port' shows by what); set $var to another port"
  fi
}

# fail_with_log NAME LOGFILE MESSAGE: print the tail of the server's log, then exit.
fail_with_log() {
  log "$3; last lines of $2:"
  tail -n 40 "$2" >&2 2>/dev/null || true
  die "$1 failed to start"
}

# wait_until NAME LOGFILE PID CMD... : poll CMD every 0.5 s until it succeeds; fail (with the log tail)
# at the timeout, or at once if process PID (when not empty) has exited.
wait_until() {
  local name=$1 logfile=$2 pid=$3; shift 3
  local deadline=$((SECONDS + SERVICES_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! proc_alive "$pid"; then
      fail_with_log "$name" "$logfile" "$name exited during startup"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail_with_log "$name" "$logfile" "$name was not ready after ${SERVICES_TIMEOUT}s"
    fi
    sleep 0.5
  done
}

# proc_alive PID: the process exists and is not a zombie (an exited child that its parent, often
# PID 1 here, has not reaped yet).
proc_alive() {
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# pid_alive PIDFILE PATTERN: the pid in PIDFILE is running and its command line contains PATTERN
# (guards against a recycled pid belonging to some other program).
pid_alive() {
  local pidfile=$1 pattern=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(head -n 1 "$pidfile")
  proc_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# Where a service keeps its data, logs, pid file and env.sh fragment.
service_dir() { echo "$SERVICES_DIR/$1"; }
pid_file() { echo "$SERVICES_DIR/$1/$1.pid"; }

# What the command line of a service's process contains (checked before signalling a pid).
service_pattern() {
  case "$1" in
    postgres) echo "bin/postgres" ;;
    mariadb) echo "--datadir=$SERVICES_DIR/mariadb/data" ;;
    redis) echo "redis-server" ;;
    kafka) echo "$SERVICES_DIR/kafka/server.properties" ;;
    s3) echo "$SERVICES_DIR/s3/s3proxy.conf" ;;
  esac
}

service_running() { pid_alive "$(pid_file "$1")" "$(service_pattern "$1")"; }

# The signal that makes each server shut down cleanly and promptly
# (PostgreSQL: SIGINT = "fast" shutdown; SIGTERM would wait for clients to disconnect).
stop_signal() { case "$1" in postgres) echo INT ;; *) echo TERM ;; esac; }

# stop_service NAME: stop our instance of NAME (found by its pid file), wait for it, clean up.
stop_service() {
  local name=$1 pidfile pid deadline
  pidfile=$(pid_file "$name")
  if ! service_running "$name"; then
    rm -f "$pidfile"
    return 1
  fi
  pid=$(head -n 1 "$pidfile")
  kill "-$(stop_signal "$name")" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 60))
  while proc_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name (pid $pid) did not stop within 60s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
}

# write_env: $SERVICES_DIR/env.sh = the env.sh fragments of our services that are running now.
write_env() {
  local envfile="$SERVICES_DIR/env.sh" name found=0
  mkdir -p "$SERVICES_DIR"
  {
    echo "# Written by scripts/services/start.sh / stop.sh: URLs of the running test servers."
    echo "# Use: . $envfile"
    # So that scripts run later (a test that stops and restarts Kafka) act on these instances,
    # and restart them from the same jars, even from another checkout.
    echo "export RECOMIND_SERVICES_DIR=$SERVICES_DIR RECOMIND_SERVICES_CACHE=$SERVICES_CACHE"
    echo "export RECOMIND_PG_PORT=$PG_PORT RECOMIND_MYSQL_PORT=$MYSQL_PORT RECOMIND_REDIS_PORT=$REDIS_PORT"
    echo "export RECOMIND_KAFKA_PORT=$KAFKA_PORT RECOMIND_KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT"
    echo "export RECOMIND_S3_PORT=$S3_PORT"
    for name in "${ALL_SERVICES[@]}"; do
      if service_running "$name" && [ -f "$SERVICES_DIR/$name/env.sh" ]; then
        cat "$SERVICES_DIR/$name/env.sh"
        found=1
      fi
    done
  } >"$envfile.tmp"
  if [ "$found" -eq 1 ]; then mv "$envfile.tmp" "$envfile"; else rm -f "$envfile.tmp" "$envfile"; fi
}

# A directory for unix sockets: inside the service dir unless that path is too long for a socket.
socket_dir() {
  local dir=$1
  if [ ${#dir} -lt 80 ]; then
    echo "$dir/run"
  else
    echo "/tmp/recomind-$(printf '%s' "$dir" | md5sum | cut -c1-10)"
  fi
}

# Locate the installed PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin), newest major.
pg_bindir() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

mariadbd_bin() {
  local b
  for b in mariadbd mysqld; do
    command -v "$b" 2>/dev/null && return 0
    [ -x "/usr/sbin/$b" ] && { echo "/usr/sbin/$b"; return 0; }
  done
  return 1
}

redis_bin() { command -v redis-server 2>/dev/null || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; }; }

kafka_jars() { echo "$SERVICES_CACHE/kafka/jars"; }
s3proxy_jar() {
  local jars=("$SERVICES_CACHE"/s3proxy/jars/s3proxy-*-jar-with-dependencies.jar)
  [ -f "${jars[0]}" ] && echo "${jars[0]}"
}
