#!/usr/bin/env bash
# Start throwaway servers for RecoMind's integration tests, on 127.0.0.1 only, each with its own
# data folder ${RECOMIND_SERVICES_DIR:-<repo>/.services}/<name>/ (wiped at every start) and its own
# non-default port:
#   postgres  PostgreSQL      25432  (RECOMIND_PG_PORT)     db/user/password recomind
#   mariadb   MariaDB         23306  (RECOMIND_MYSQL_PORT)  db/user/password recomind
#   redis     Redis           26379  (RECOMIND_REDIS_PORT)  no persistence
#   kafka     Kafka 4 KRaft   27092  (RECOMIND_KAFKA_PORT), controller 27093 (RECOMIND_KAFKA_CONTROLLER_PORT)
#   s3        S3Proxy         28080  (RECOMIND_S3_PORT)     keys recomind / recomind-secret, bucket recomind-lake
# Waits until each one is ready (RECOMIND_SERVICES_TIMEOUT seconds, default 90; on failure prints the
# server's log tail), stops our own earlier instance of it first, writes its pid to <name>/<name>.pid
# and writes ${RECOMIND_SERVICES_DIR}/env.sh with the RECOMIND_TEST_*_URL variables for the tests.
# Needs scripts/services/install.sh first. Stop with scripts/services/stop.sh.
#
# Usage: scripts/services/start.sh [--keep-data] [all|postgres|mariadb|redis|kafka|s3]...   (default: all)
#        . .services/env.sh
# --keep-data restarts Kafka on the data it already has (topics, offsets), as after a broker outage;
# the other servers always start empty.
set -euo pipefail
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# fresh_dir NAME: stop our previous instance of NAME, then give it an empty folder.
fresh_dir() {
  local dir
  dir=$(service_dir "$1")
  if stop_service "$1"; then log "$1: stopped the previous instance"; fi
  rm -rf "$dir"
  mkdir -p "$dir"
}

# ---------------------------------------------------------------- PostgreSQL
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

start_postgres() {
  local dir bindir root sock log
  dir=$(service_dir postgres)
  bindir=$(pg_bindir) || die "PostgreSQL is not installed: run scripts/services/install.sh postgres"
  fresh_dir postgres
  require_free_port "$PG_PORT" RECOMIND_PG_PORT

  # The server runs as the postgres user (initdb refuses root), so it must be able to reach its
  # folder; when the repo sits under a private folder (e.g. /root) keep the files under /tmp instead.
  root=$dir
  if ! as_postgres test -x "$dir"; then
    root="/tmp/recomind-pg-$(printf '%s' "$dir" | md5sum | cut -c1-10)"
    rm -rf "$root"
    mkdir -p "$root"
    ln -s "$root/data" "$dir/data"
    ln -s "$root/postgres.log" "$dir/postgres.log"
  fi
  echo "$root" >"$dir/root"
  sock=$(socket_dir "$root")
  log=$root/postgres.log
  mkdir -p "$root/data" "$sock"
  chown -R postgres:postgres "$root"
  chmod 700 "$root/data"

  as_postgres "$bindir/initdb" -D "$root/data" -U postgres --no-locale --encoding=UTF8 \
    --auth-local=peer --auth-host=scram-sha-256 --no-sync >"$dir/initdb.log" 2>&1 \
    || fail_with_log postgres "$dir/initdb.log" "initdb failed"

  # fsync off: the data is thrown away anyway, and tests run faster.
  as_postgres "$bindir/pg_ctl" -D "$root/data" -l "$log" -w -t "$SERVICES_TIMEOUT" -o "\
      -c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$sock' \
      -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
      -c shared_buffers=64MB -c max_connections=100" start >"$dir/pg_ctl.log" 2>&1 \
    || fail_with_log postgres "$log" "pg_ctl start failed"
  head -n 1 "$root/data/postmaster.pid" >"$(pid_file postgres)"

  as_postgres "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$PG_PORT" -U postgres -d postgres <<SQL \
    || die "could not create the $DB_NAME database and user in PostgreSQL"
CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
CREATE DATABASE $DB_NAME OWNER $DB_USER;
SQL
  echo "export RECOMIND_TEST_POSTGRES_URL=postgresql+psycopg://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME" \
    >"$dir/env.sh"
}

# ---------------------------------------------------------------- MariaDB
start_mariadb() {
  local dir bin sock pid client=(mariadb --no-defaults)
  dir=$(service_dir mariadb)
  bin=$(mariadbd_bin) || die "MariaDB is not installed: run scripts/services/install.sh mariadb"
  command -v mariadb >/dev/null || client=(mysql --no-defaults)
  fresh_dir mariadb
  require_free_port "$MYSQL_PORT" RECOMIND_MYSQL_PORT
  sock="$(socket_dir "$dir")/mariadb.sock"
  mkdir -p "$(dirname "$sock")"

  mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --skip-test-db \
    >"$dir/install-db.log" 2>&1 || fail_with_log mariadb "$dir/install-db.log" "mariadb-install-db failed"

  setsid "$bin" --no-defaults --user=root --datadir="$dir/data" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$sock" --skip-name-resolve \
    --pid-file="$(pid_file mariadb)" --log-error="$dir/mariadb.log" --tmpdir="$dir" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=2 --performance-schema=OFF \
    </dev/null >"$dir/mariadbd.out" 2>&1 &
  pid=$!
  echo "$pid" >"$(pid_file mariadb)"
  wait_until mariadb "$dir/mariadb.log" "$pid" \
    "${client[@]}" --socket="$sock" --user=root -e 'SELECT 1'

  # root connects over the socket (unix_socket auth); the app user over TCP with a password.
  "${client[@]}" --socket="$sock" --user=root <<SQL || die "could not create the $DB_NAME database and user in MariaDB"
CREATE DATABASE $DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$DB_NAME%\`.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`$DB_NAME%\`.* TO '$DB_USER'@'%';
SQL
  echo "export RECOMIND_TEST_MYSQL_URL=mysql+pymysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$MYSQL_PORT/$DB_NAME" \
    >"$dir/env.sh"
}

# ---------------------------------------------------------------- Redis
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
  local dir bin pid
  dir=$(service_dir redis)
  bin=$(redis_bin) || die "Redis is not installed: run scripts/services/install.sh redis"
  fresh_dir redis
  require_free_port "$REDIS_PORT" RECOMIND_REDIS_PORT

  setsid "$bin" --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes --dir "$dir" \
    --save "" --appendonly no --daemonize no --logfile "$dir/redis.log" \
    </dev/null >"$dir/redis.out" 2>&1 &
  pid=$!
  echo "$pid" >"$(pid_file redis)"
  wait_until redis "$dir/redis.log" "$pid" redis_ping
  echo "export RECOMIND_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0" >"$dir/env.sh"
}

# ---------------------------------------------------------------- Kafka (KRaft, broker+controller)
kafka_ready() {
  port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$(service_dir kafka)/server.log"
}

# format_kafka DIR JARS: an empty folder, the broker's config and freshly formatted KRaft storage.
format_kafka() {
  local dir=$1 jars=$2 cluster_id
  fresh_dir kafka
  require_free_port "$KAFKA_PORT" RECOMIND_KAFKA_PORT
  require_free_port "$KAFKA_CONTROLLER_PORT" RECOMIND_KAFKA_CONTROLLER_PORT

  cat >"$dir/server.properties" <<EOF
# single-node KRaft cluster for tests (written by scripts/services/start.sh)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

  # Format the storage with a fresh cluster id (the 4.x form of `kafka-storage.sh format`).
  cluster_id=$(java -Xmx128m -cp "$jars/*" kafka.tools.StorageTool random-uuid 2>"$dir/format.log") \
    || fail_with_log kafka "$dir/format.log" "kafka-storage random-uuid failed"
  java -Xmx256m -cp "$jars/*" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$dir/server.properties" >>"$dir/format.log" 2>&1 \
    || fail_with_log kafka "$dir/format.log" "kafka-storage format failed"
}

start_kafka() {
  local dir jars pid
  dir=$(service_dir kafka)
  jars=$(kafka_jars)
  [ -f "$jars/../pom.sha256" ] || die "Kafka jars are missing: run scripts/services/install.sh kafka"
  if [ "$KEEP_DATA" = 1 ] && [ -f "$dir/data/meta.properties" ]; then
    if stop_service kafka; then log "kafka: stopped the previous instance"; fi
    require_free_port "$KAFKA_PORT" RECOMIND_KAFKA_PORT
    require_free_port "$KAFKA_CONTROLLER_PORT" RECOMIND_KAFKA_CONTROLLER_PORT
    log "kafka: restarting on its existing data"
  else
    format_kafka "$dir" "$jars"
  fi


  # shellcheck disable=SC2086  # KAFKA_HEAP holds several JVM flags
  setsid java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dkafka.logs.dir="$dir" \
    -Dlog4j2.configurationFile="$REPO/infra/kafka/log4j2.properties" \
    -cp "$jars/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/server.log" 2>&1 &   # JVM errors land in the same log as log4j's lines
  pid=$!
  echo "$pid" >"$(pid_file kafka)"
  wait_until kafka "$dir/server.log" "$pid" kafka_ready
  echo "export RECOMIND_TEST_KAFKA_URL=kafka://127.0.0.1:$KAFKA_PORT" >"$dir/env.sh"
}

# ---------------------------------------------------------------- S3 (S3Proxy, filesystem backend)
start_s3() {
  local dir jar pid
  dir=$(service_dir s3)
  jar=$(s3proxy_jar) || die "the S3Proxy jar is missing: run scripts/services/install.sh s3"
  fresh_dir s3
  require_free_port "$S3_PORT" RECOMIND_S3_PORT
  # With the filesystem backend a bucket is a folder: create the lake bucket up front.
  mkdir -p "$dir/data/$S3_BUCKET"

  cat >"$dir/s3proxy.conf" <<EOF
# S3Proxy for tests (written by scripts/services/start.sh)
s3proxy.endpoint=http://127.0.0.1:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_ACCESS_KEY
s3proxy.credential=$S3_SECRET_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=$dir/data
EOF

  # shellcheck disable=SC2086  # S3_HEAP holds several JVM flags
  setsid java $S3_HEAP -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -jar "$jar" --properties "$dir/s3proxy.conf" \
    </dev/null >"$dir/s3proxy.log" 2>&1 &
  pid=$!
  echo "$pid" >"$(pid_file s3)"
  wait_until s3 "$dir/s3proxy.log" "$pid" port_open "$S3_PORT"
  cat >"$dir/env.sh" <<EOF
export RECOMIND_TEST_S3_URL=s3://$S3_BUCKET/lake
export RECOMIND_S3_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_DEFAULT_REGION=us-east-1
EOF
}

# ---------------------------------------------------------------- main
KEEP_DATA=0
if [ "${1:-}" = --keep-data ]; then
  KEEP_DATA=1
  shift
fi
list=$(parse_services "$@")
mapfile -t services <<<"$list"
mkdir -p "$SERVICES_DIR"
total=$SECONDS
for s in "${services[@]}"; do
  t=$SECONDS
  "start_$s"
  log "$s: ready ($((SECONDS - t))s)"
done
write_env
log "all started in $((SECONDS - total))s; use: . $SERVICES_DIR/env.sh"
