#!/usr/bin/env bash
# Install what the integration-test servers need, only when it is missing:
#   postgres -> Debian package postgresql
#   mariadb  -> Debian package mariadb-server (brings the mariadb client)
#   redis    -> Debian package redis-server (brings redis-cli)
#   kafka    -> Java + Maven (Debian), then the Kafka jars from Maven Central (infra/kafka/pom.xml)
#   s3       -> Java + Maven (Debian), then the S3Proxy jar from Maven Central (infra/s3proxy/pom.xml)
# Jars go to ${RECOMIND_SERVICES_CACHE:-<repo>/.cache/services}/<name>/jars and are fetched again only
# when the pom changes. Idempotent: a second run does nothing and takes about a second.
#
# Usage: scripts/services/install.sh [all|postgres|mariadb|redis|kafka|s3]...   (default: all)
set -euo pipefail
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_java_maven() {
  local missing=()
  command -v java >/dev/null || missing+=(default-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# maven_fetch NAME: copy the dependencies of infra/NAME/pom.xml into $SERVICES_CACHE/NAME/jars,
# unless they are there already for this exact pom (stamp = the pom's sha256).
maven_fetch() {
  local name=$1 pom="$REPO/infra/$1/pom.xml" dest="$SERVICES_CACHE/$1"
  local want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ -f "$dest/pom.sha256" ] && [ "$(cat "$dest/pom.sha256")" = "$want" ]; then
    return 0
  fi
  need_java_maven
  log "fetching $name jars with Maven into $dest/jars"
  rm -rf "$dest/jars" "$dest/pom.sha256"
  mkdir -p "$dest"
  if ! mvn -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dest/jars" \
    >"$dest/maven.log" 2>&1; then
    tail -n 40 "$dest/maven.log" >&2
    die "Maven could not fetch the $name jars (log: $dest/maven.log)"
  fi
  echo "$want" >"$dest/pom.sha256"
}

install_postgres() { pg_bindir >/dev/null || apt_install postgresql; }
install_mariadb() {
  if ! mariadbd_bin >/dev/null || ! command -v mariadb-install-db >/dev/null; then
    apt_install mariadb-server
  fi
}
install_redis() {
  if ! redis_bin >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
  fi
}
install_kafka() { need_java_maven; maven_fetch kafka; }
install_s3() { need_java_maven; maven_fetch s3proxy; }

list=$(parse_services "$@")
mapfile -t services <<<"$list"
for s in "${services[@]}"; do
  start=$SECONDS
  "install_$s"
  log "$s: installed ($((SECONDS - start))s)"
done
