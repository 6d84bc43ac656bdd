#!/usr/bin/env bash
# The attack tests again, on the two-site simulation with TLS and authentication on every link (issue
# 34: "every attack test still passes with TLS and authentication on"): PostgreSQL scram-sha-256 over TLS
# for clients and replication, Redis ACL users over TLS, etcd over TLS with its users, the API and the
# status responders over HTTPS (scripts/lib/secure-simulation.ts).
# An attack test is a test file whose head comment says "Attack test:". The simulation has its own
# ports and folder (.fleetpki-secure/, git-ignored), runs beside the plain one, and is stopped at the end.
# Usage: scripts/test-secure.sh [test files] (default: every attack test).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh   # the Node setup installed, when run from a shell without it
dir="$PWD/.fleetpki-secure"
node_run=(node --conditions=fleetpki-source --import tsx)
cli=("${node_run[@]}" services/cli/src/main.ts)
# Parts left running by a killed run still hold the previous run's certificates: down first, then new material.
if [ -f "$dir/fleetpki.yaml" ]; then FLEETPKI_CONFIG="$dir/fleetpki.yaml" "${cli[@]}" sites down > /dev/null || true; fi
config=$("${node_run[@]}" scripts/lib/secure-simulation.ts "$dir")
export FLEETPKI_CONFIG="$config" PGSSLMODE=require PGPASSFILE="$dir/pgpass" NODE_EXTRA_CA_CERTS="$dir/tls/ca.pem"
finish() { "${cli[@]}" sites down > /dev/null || true; }
trap finish EXIT
"${cli[@]}" sites up
# The links refuse what the plain simulation accepts, or the run below would prove nothing (ports: secure-simulation.ts).
refuse() { echo "test-secure.sh: $1" >&2; exit 1; }
if PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=5 psql "host=127.0.0.1 port=25432 sslmode=disable user=fleetpki dbname=postgres" -Atc 'SELECT 1' > /dev/null 2>&1; then refuse "PostgreSQL took a connection without TLS or password"; fi
if PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=5 psql "host=127.0.0.1 port=25432 sslmode=require user=fleetpki dbname=postgres" -Atc 'SELECT 1' > /dev/null 2>&1; then refuse "PostgreSQL took a TLS connection without a password"; fi
if [ "$(timeout 5 redis-cli -h 127.0.0.1 -p 26379 ping 2>/dev/null)" = PONG ]; then refuse "Redis answered without TLS or a user"; fi
if curl -sf --max-time 5 http://127.0.0.1:22379/health > /dev/null; then refuse "etcd answered over plain HTTP"; fi
mapfile -t files < <(grep -l "Attack test:" test/*.test.ts | sort)
if [ "$#" -gt 0 ]; then files=("$@"); fi
echo "test-secure.sh: ${#files[@]} attack test files with TLS and authentication on PostgreSQL, Redis, etcd and HTTPS"
bash scripts/run-tests.sh "${files[@]}"
