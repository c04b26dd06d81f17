#!/usr/bin/env bash
# Makes sure the brokers the test suite talks to answer on this machine: Redis on
# 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 (guest/guest). A broker that is down is
# started; one that is not installed is installed with apt-get first. Kafka needs nothing: the
# tests run an embedded Kafka-protocol broker in-process.
#
# It never stops or restarts a running broker: tests share them (fault tests start their own).
set -euo pipefail

REDIS_PORT=${EVENTBUS_REDIS_PORT:-6379}
RABBITMQ_PORT=${EVENTBUS_RABBITMQ_PORT:-5672}

log() { printf 'brokers: %s\n' "$*" >&2; }
die() { printf 'brokers: ERROR: %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

redis_answers() {
  # Speak RESP over bash's /dev/tcp so the check needs no redis-cli.
  local reply=""
  { exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 3 reply <&3 || true
  exec 3<&- 3>&-
  [[ "$reply" == +PONG* ]]
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds or time runs out.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.5
  done
  log "$what is up"
}

apt_install() {
  command -v apt-get >/dev/null || die "$1 is not installed and apt-get is not available: install $1 by hand"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  log "installing $* with apt-get"
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

ensure_redis() {
  if redis_answers; then log "redis answers on 127.0.0.1:$REDIS_PORT"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null \
    || die "redis-server did not start"
  wait_for "redis" 30 redis_answers || die "redis does not answer PING on 127.0.0.1:$REDIS_PORT after 30s"
}

ensure_rabbitmq() {
  if port_open 127.0.0.1 "$RABBITMQ_PORT"; then log "rabbitmq answers on 127.0.0.1:$RABBITMQ_PORT"; return; fi
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  log "starting rabbitmq-server"
  RABBITMQ_NODE_PORT="$RABBITMQ_PORT" rabbitmq-server -detached >/dev/null 2>&1 || true
  timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || log "rabbitmqctl await_startup did not confirm; waiting for the port"
  # await_startup can return before the AMQP listener accepts connections.
  wait_for "rabbitmq" 120 port_open 127.0.0.1 "$RABBITMQ_PORT" \
    || die "rabbitmq does not accept connections on 127.0.0.1:$RABBITMQ_PORT after 120s (see /var/log/rabbitmq)"
}

case "${1:-ensure}" in
  ensure) ensure_redis; ensure_rabbitmq ;;
  redis) ensure_redis ;;
  rabbitmq) ensure_rabbitmq ;;
  *) die "usage: $0 [ensure|redis|rabbitmq]" ;;
esac
