#!/usr/bin/env bash
# README command 2: set everything up, then type-check, lint and run every test against the real
# SoftHSM, PostgreSQL and Redis of the two local sites.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase prints when it ends and how long it took: CI has a time limit, and its log is the only
# place a slow phase on a fresh machine shows.
phase_start=$SECONDS
phase() {
  echo "test.sh: $1 done in $((SECONDS - phase_start)) s ($(date -u +%H:%M:%S), ${SECONDS} s since start)"
  phase_start=$SECONDS
}
bash scripts/setup.sh
phase setup
source scripts/env.sh   # the Node and pnpm setup installed, for this shell too
pnpm -s typecheck
phase typecheck
pnpm -s lint
phase lint
bash scripts/check-units.sh
# The build first: `pnpm bench startup`'s smoke test starts programs from it too.
pnpm -s build
phase 'units and build'
pnpm -s test
phase 'tests'
# The attack tests once more, with TLS and authentication on every internal link (issue 34).
bash scripts/test-secure.sh
phase 'attack tests with TLS and authentication'
# Patroni running PostgreSQL with TLS and authentication on every link (issue 35): its links attacked in
# plaintext. The failover tests under Patroni (scripts/test-patroni.sh without --secure) are not here yet:
# run by hand; CI's time limit and runs beside another suite on these two cores (docs/patroni.md).
bash scripts/test-patroni.sh --secure
phase 'Patroni with TLS'
# The tests that start programs, again against a production installation of that build (issue 34).
FLEETPKI_PACKAGE_SKIP_BUILD=1 bash scripts/test-compiled.sh
phase 'tests against the build'
