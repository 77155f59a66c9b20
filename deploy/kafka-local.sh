#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft) on 127.0.0.1, without Docker.
#   deploy/kafka-local.sh start|stop|status|fetch
# Jars come from Maven Central (deploy/kafka/pom.xml) into $COEX_KAFKA_HOME/libs; storage is
# formatted with the broker's own StorageTool; the broker runs as one JVM started with `java -cp`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
home="${COEX_KAFKA_HOME:-$root/.coex/kafka}"
bootstrap="${COEX_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
port="${bootstrap##*:}"
cport="${COEX_KAFKA_CONTROLLER_PORT:-$((port + 1))}"
heap="${COEX_KAFKA_HEAP:-1g}"
# The client JIT only: on a machine of two cores the optimizing compiler's threads cost the
# broker half its CPU (bench/RESULTS.md), for code a local broker does not run long enough to need.
jvm_opts="${COEX_KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
libs="$home/libs"
data="$home/data"
logs="$home/logs"
pidfile="$home/kafka.pid"
conf="$home/server.properties"

# Output that cannot be written (a pipe whose reader died of the same Ctrl-C) must not stop a start
# or a stop halfway: writes then fail instead of killing the script, and their failure is ignored.
trap '' PIPE
log() { printf 'kafka-local: %s\n' "$*" >&2 || true; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

our_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(cat "$pidfile")"
  # Only a live JVM started with our own config counts as ours.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $conf"; then
    echo "$pid"
    return 0
  fi
  return 1
}

fetch() {
  [ -f "$libs/.complete" ] && return 0
  command -v mvn >/dev/null || { log "mvn not found: install Maven (apt-get install maven)"; exit 1; }
  log "resolving Kafka jars from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}

format() {
  mkdir -p "$data" "$logs"
  sed -e "s|__PORT__|$port|g" -e "s|__CPORT__|$cport|g" -e "s|__DATA__|$data|g" \
    "$here/kafka/server.properties" >"$conf"
  [ -f "$data/meta.properties" ] && return 0
  local id
  id="$(java -cp "$libs/*" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$logs" kafka.tools.StorageTool random-uuid)"
  log "formatting storage in $data (cluster $id)"
  java -cp "$libs/*" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$logs" kafka.tools.StorageTool format -t "$id" -c "$conf" >&2
}

start() {
  if pid="$(our_pid)"; then
    log "already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  if answers; then
    log "a broker not started by this script already answers on 127.0.0.1:$port; using it"
    return 0
  fi
  fetch
  format
  log "starting broker on 127.0.0.1:$port (logs: $logs/server.log)"
  # shellcheck disable=SC2086 # the options are words
  nohup java -Xms256m "-Xmx$heap" $jvm_opts -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" -Dkafka.logs.dir="$logs" \
    -cp "$libs/*" kafka.Kafka "$conf" >"$logs/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  local waited=0
  until answers && grep -q "Kafka Server started" "$logs/server.log" 2>/dev/null; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "broker exited; last lines of its log:"
      tail -n 30 "$logs/server.log" "$logs/stdout.log" >&2 || true
      rm -f "$pidfile"
      exit 1
    fi
    if [ "$waited" -ge 120 ]; then
      log "broker did not answer within 120 s"
      exit 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  log "broker answers on 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    log "no broker started by this script is running"
    rm -f "$pidfile"
    return 0
  fi
  log "stopping broker (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }
    sleep 0.5
  done
  log "broker did not stop within 30 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

status() {
  if pid="$(our_pid)"; then
    echo "running (pid $pid) on 127.0.0.1:$port"
  elif answers; then
    echo "a broker not started by this script answers on 127.0.0.1:$port"
  else
    echo "stopped"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
