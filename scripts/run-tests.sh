#!/usr/bin/env bash
# Runs unit tests (beside the code) and integration tests (test/) with node's test runner. Files run one
# at a time: integration tests share the two local sites and some stop a part of them on purpose.
# The run has a deployment of its own on those sites: a throw-away database (fleetpki_test_<id>) and
# SoftHSM tokens (fleetpki-test-<id>-a|b|root), removed at the end; the installation's `fleetpki`
# database and tokens are never read or written by a test.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find packages services test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "$#" -gt 0 ]; then files=("$@"); fi
node_run=(node --conditions=fleetpki-source --import tsx --import ./scripts/lib/blocking-stdio.mjs)
run_id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
export FLEETPKI_PG_DATABASE="fleetpki_test_${run_id}" FLEETPKI_HSM_TOKEN_PREFIX="fleetpki-test-${run_id}"
unset FLEETPKI_DATABASE_URL FLEETPKI_SERVICE_DATABASE_URL
"${node_run[@]}" scripts/test-deployment.ts sweep
trap '"${node_run[@]}" scripts/test-deployment.ts drop || true' EXIT
# A test file whose tests are done exits even if something it started still holds the event loop (a
# failed test's traffic loop, say): a failure must never turn into a CI run that hangs. The report is
# kept and checked afterwards: a test that started and has no verdict fails the run (a file's process
# that ended early, or its last verdicts lost on the way: scripts/lib/blocking-stdio.mjs says how).
report=$(mktemp -t fleetpki-test-report.XXXXXX)
status=0
"${node_run[@]}" --test --test-concurrency=1 --test-force-exit "${files[@]}" | tee "$report" || status=$?
"${node_run[@]}" scripts/lib/check-test-report.ts "$report" || status=1
rm -f "$report"
exit "$status"
