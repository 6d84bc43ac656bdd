#!/usr/bin/env bash
# README command 2: set everything up, then type-check, lint and run every test against the real
# SoftHSM, PostgreSQL and Redis of the two local sites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh   # the Node and pnpm setup installed, for this shell too
pnpm -s typecheck
pnpm -s lint
bash scripts/check-units.sh
# The build first: `pnpm bench startup`'s smoke test starts programs from it too.
pnpm -s build
pnpm -s test
# The tests that start programs, again against a production installation of that build (issue 34).
FLEETPKI_PACKAGE_SKIP_BUILD=1 bash scripts/test-compiled.sh
