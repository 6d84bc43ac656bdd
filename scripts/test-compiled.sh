#!/usr/bin/env bash
# The integration tests against the build (issue 34): a production installation is made
# (scripts/package.sh: dist and production dependencies only), the sites' agents restart from the
# build, and the tests that start programs as processes run with FLEETPKI_RUNTIME=compiled, so every
# service, the CLI and the agents they use run `node services/NAME/dist/main.js`. The test files
# themselves still run from sources: a test that calls a package in-process tests the sources, so
# only tests that start programs are worth a second run. This set covers each program and each kind
# of child a build must carry (worker threads, the HSM child process) in a few minutes, where the
# whole suite twice would not fit CI's 30:
#   installation     the installation itself: no devDependency, no source; CLI --help, the agent's
#                    modules, and each service to ready, from the installation folder with a bare PATH
#   service-database the status responder (signing threads), and its start-up refusals
#   batch            batch-worker (signing and possession threads) and the issuer API's batch path
#   custody          the CLI's ceremony and custody commands (HSM child processes, the offline root)
#   standby-down     issuer-api as a process; the CLI's sites orders carried out by the agents
#   drills           the CLI's failover, switchover and failback drills: agents, promotion, rewind
#   two-hosts-installed  the installed layout on three network namespaces, one file per host, TLS and
#                    authentication on every link; refusals at start; skipped without root
# Usage: scripts/test-compiled.sh [test files] (default: the set above). Needs the sites up.
set -euo pipefail
cd "$(dirname "$0")/.."
files=(test/installation.test.ts test/service-database.test.ts test/batch.test.ts test/custody.test.ts test/standby-down.test.ts test/drills.test.ts test/two-hosts-installed.test.ts)
if [ "$#" -gt 0 ]; then files=("$@"); fi
node_run=(node --conditions=fleetpki-source --import tsx)
# FLEETPKI_INSTALLATION_DIR names one made before (pnpm package DIR), kept; else a temporary one.
install="${FLEETPKI_INSTALLATION_DIR:-}"
made=0
if [ -z "$install" ]; then install=$(mktemp -d "${TMPDIR:-/tmp}/fleetpki-installation.XXXXXX"); made=1; fi
finish() {
  "${node_run[@]}" scripts/lib/restart-agents.ts || true
  if [ "$made" = 1 ]; then rm -rf "$install"; fi
}
trap finish EXIT
if [ "$made" = 1 ]; then bash scripts/package.sh "$install"; fi
FLEETPKI_RUNTIME=compiled "${node_run[@]}" scripts/lib/restart-agents.ts
FLEETPKI_RUNTIME=compiled FLEETPKI_INSTALLATION_DIR="$install" bash scripts/run-tests.sh "${files[@]}"
