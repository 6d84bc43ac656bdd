#!/usr/bin/env bash
# README command 1: set everything up, then run the demo (see scripts/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.fleetpki/tools/node_modules/.bin:$PATH"
pnpm -s demo "$@"
