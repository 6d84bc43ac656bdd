#!/usr/bin/env bash
# The attack tests again, on the two-site simulation with TLS and authentication on every link (issue
# 34: "every attack test still passes with TLS and authentication on"): PostgreSQL scram-sha-256 over TLS
# for clients and replication, Redis ACL users over TLS, etcd over TLS with its users, the API and the
# status responders over HTTPS (scripts/lib/secure-simulation.ts). The simulation has its own ports and
# folder (.fleetpki-secure/, git-ignored), runs beside the plain one, and is stopped at the end.
# An attack test says so in its head comment: "Attack test: also run with TLS ..." (run here) or
# "Attack test: not run again ...: why". A test file that speaks of an attack, an outside review or
# issue 40's findings and says neither stops the run: a new attack test cannot be left out unnoticed.
# Usage: scripts/test-secure.sh [test files] (default: every attack test).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh   # the Node setup installed, when run from a shell without it
unmarked=()
for f in test/*.test.ts; do
  # grep reads head's output through a process substitution: with pipefail, a pipe into grep -q could
  # fail on head's SIGPIPE and read as "no match".
  if ! grep -q "Attack test:" "$f" && grep -qiE 'attack|outside review|issue 40' <(head -40 "$f"); then unmarked+=("$f"); fi
done
if [ "${#unmarked[@]}" -gt 0 ]; then
  echo "test-secure.sh: these test files speak of an attack or a review but have no 'Attack test:' line in their head comment (say 'Attack test: also run with TLS and authentication on every internal link (scripts/test-secure.sh).' or 'Attack test: not run again on the secure simulation: <why>'): ${unmarked[*]}" >&2
  exit 1
fi
dir="$PWD/.fleetpki-secure"
node_run=(node --conditions=fleetpki-source --import tsx)
cli=("${node_run[@]}" services/cli/src/main.ts)
# Parts left running by a killed run still hold the previous run's certificates: down first, then new material.
if [ -f "$dir/fleetpki.yaml" ]; then FLEETPKI_CONFIG="$dir/fleetpki.yaml" "${cli[@]}" sites down > /dev/null || true; fi
config=$("${node_run[@]}" scripts/lib/secure-simulation.ts "$dir")
export FLEETPKI_CONFIG="$config"
finish() { "${cli[@]}" sites down > /dev/null || true; }
trap finish EXIT
"${cli[@]}" sites up
# Each link admits the configured client and refuses one without TLS or credentials, or this run would prove nothing.
"${node_run[@]}" scripts/lib/secure-simulation-check.ts
mapfile -t files < <(grep -l "Attack test: also run" test/*.test.ts | sort)
if [ "$#" -gt 0 ]; then files=("$@"); fi
echo "test-secure.sh: ${#files[@]} attack test files with TLS and authentication on PostgreSQL, Redis, etcd and HTTPS"
# The tests' own connections (pools on a URL, the installation guard) get TLS and passwords from libpq's
# variables and trust the simulation's CA; programs they start do not see these (programEnvironment).
PGSSLMODE=require PGPASSFILE="$dir/pgpass" NODE_EXTRA_CA_CERTS="$dir/tls/ca.pem" bash scripts/run-tests.sh "${files[@]}"
