#!/usr/bin/env bash
# pnpm bench NAME [args]: runs scripts/bench-NAME.ts
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh   # the Node setup installed, when run from a shell without it
name="${1:?usage: pnpm bench NAME [args] (enrol, batch, ocsp, crl, keys, sign, failover, cmp, startup, backup)}"; shift
exec node --conditions=fleetpki-source --import tsx "scripts/bench-$name.ts" "$@"
