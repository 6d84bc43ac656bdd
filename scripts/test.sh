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
pnpm -s test
