#!/usr/bin/env bash
# README command 1: set everything up, then run the demo (see scripts/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh   # the Node and pnpm setup installed, for this shell too
pnpm -s demo "$@"
