#!/usr/bin/env bash
# Runs unit tests (beside the code) and integration tests (test/) with node's test runner. Files run one
# at a time: integration tests share the two local sites and some stop a part of them on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find packages services test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "$#" -gt 0 ]; then files=("$@"); fi
exec node --conditions=fleetpki-source --import tsx --test --test-concurrency=1 "${files[@]}"
