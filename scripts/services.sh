#!/usr/bin/env bash
# Start the services the test suite talks to, where they are not already running:
# PostgreSQL (127.0.0.1:5432, trust auth), Redis (6379) and RabbitMQ (5672); install
# Chromium and Node.js for the dashboard's and the TypeScript client's tests.
set -euo pipefail

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
# The dashboard's browser tests drive Debian's Chromium (no browser download); the
# TypeScript client is built and tested with Node.js.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! port_open 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  # The tests connect as postgres over TCP without a password.
  grep -q "ragcast-tests" "$hba" || sed -i '1i host all all 127.0.0.1/32 trust # ragcast-tests' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
if ! port_open 6379; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! port_open 5672; then
  rabbitmq-server -detached
fi

for port in 5432 6379 5672; do
  for _ in $(seq 1 60); do port_open "$port" && break; sleep 1; done
  port_open "$port" || { echo "service on port $port did not start" >&2; exit 1; }
done
echo "services: postgresql, redis and rabbitmq are up"
