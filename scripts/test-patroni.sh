#!/usr/bin/env bash
# The failover tests again, with Patroni running PostgreSQL (database.ha patroni, issue 35): Patroni on
# each site elects, promotes and rewinds, and its leader key in etcd is the CA-site role. The invariants
# are the same as under the site agent's own failover: RPO 0, no duplicate serial, a fenced site neither
# issues nor vouches, a bounded 503 while the standby is gone. The simulation has its own ports and folder
# (.fleetpki-patroni/, git-ignored; scripts/lib/patroni-simulation.ts), runs beside the plain one, and is
# stopped at the end. test/partition.test.ts runs its own pair in network namespaces: named here, it runs
# under Patroni too (not yet by default: its services on site A did not answer /readyz within its minute
# under Patroni in network namespaces; issue 35's note).
# With --secure, on the simulation with TLS and authentication on every link (scripts/lib/secure-simulation.ts
# --ha patroni, .fleetpki-secure-patroni/): Patroni's PostgreSQL connections, replication and pg_rewind over
# TLS with scram, Patroni on etcd over TLS with its own etcd user, its REST API over HTTPS.
# Usage: scripts/test-patroni.sh [--secure] [test files] (default: the failover tests below).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh   # the Node setup installed, when run from a shell without it
secure=0
if [ "${1:-}" = --secure ]; then secure=1; shift; fi
node_run=(node --conditions=fleetpki-source --import tsx)
cli=("${node_run[@]}" services/cli/src/main.ts)
if [ "$secure" = 1 ]; then dir="$PWD/.fleetpki-secure-patroni"; else dir="$PWD/.fleetpki-patroni"; fi
# Parts left running by a killed run (with the previous run's certificates, when secure): down first.
if [ -f "$dir/fleetpki.yaml" ]; then FLEETPKI_CONFIG="$dir/fleetpki.yaml" "${cli[@]}" sites down > /dev/null || true; fi
tls_env=()
if [ "$secure" = 1 ]; then
  config=$("${node_run[@]}" scripts/lib/secure-simulation.ts "$dir" --ha patroni)
  # As in test-secure.sh: the tests' own connections get TLS and passwords from libpq's variables.
  tls_env=(PGSSLMODE=require "PGPASSFILE=$dir/pgpass" "NODE_EXTRA_CA_CERTS=$dir/tls/ca.pem")
else
  config=$("${node_run[@]}" scripts/lib/patroni-simulation.ts "$dir")
fi
finish() { FLEETPKI_CONFIG="$config" "${cli[@]}" sites down > /dev/null || true; }
trap finish EXIT
files=(test/drills.test.ts test/standby-down.test.ts test/forced-failover.test.ts test/ocsp-race.test.ts test/patroni.test.ts)
# With --secure, Patroni's own tests (its links attacked in plaintext): the drills' batch workers run in a
# test deployment whose queue keys the secure simulation's Redis ACL does not admit (it names the
# installation's only), so the failover tests run on the plain Patroni simulation.
if [ "$secure" = 1 ]; then files=(test/patroni.test.ts); fi
if [ "$#" -gt 0 ]; then files=("$@"); fi
loopback=() netns=()
for f in "${files[@]}"; do if [ "$f" = test/partition.test.ts ]; then netns+=("$f"); else loopback+=("$f"); fi; done
status=0
if [ "${#loopback[@]}" -gt 0 ]; then
  FLEETPKI_CONFIG="$config" "${cli[@]}" sites up
  # The installation's database, as setup.sh migrates the plain one: the agents carry out orders in it.
  FLEETPKI_CONFIG="$config" "${cli[@]}" db migrate
  echo "test-patroni.sh: ${#loopback[@]} failover test files with Patroni running PostgreSQL"
  env "${tls_env[@]}" FLEETPKI_CONFIG="$config" bash scripts/run-tests.sh "${loopback[@]}" || status=$?
fi
# The partition test starts its own pair (FLEETPKI_NETNS=on, .two-hosts/); it reads the choice from the environment.
if [ "${#netns[@]}" -gt 0 ]; then FLEETPKI_DATABASE_HA=patroni bash scripts/run-tests.sh "${netns[@]}" || status=$?; fi
exit "$status"
