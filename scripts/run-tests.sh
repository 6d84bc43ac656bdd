#!/usr/bin/env bash
# Runs unit tests (beside the code) and integration tests (test/) with node's test runner. Files run one
# at a time: integration tests share the two local sites and some stop a part of them on purpose.
# The run has a deployment of its own on those sites: a throw-away database (fleetpki_test_<id>), SoftHSM
# tokens (fleetpki-test-<id>-a|b|root) and a temporary folder for every file it writes
# (FLEETPKI_DEPLOYMENT_DIR: TLS material, PINs, the offline root's HSM, audit checkpoints, drill output),
# all removed at the end. The installation's database, tokens and files are never read or written by a
# test; a guard (scripts/lib/installation-guard.ts) fingerprints them before the run and fails the run,
# naming what changed, if they are not the same afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh   # the Node setup installed, when run from a shell without it
mapfile -t files < <(find packages services scripts test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "$#" -gt 0 ]; then files=("$@"); fi
node_run=(node --conditions=fleetpki-source --import tsx --import ./scripts/lib/blocking-stdio.mjs)
run_id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
# The run id in the folder's name lets a later run's sweep tell a killed run's folder from a live one.
deployment_dir=$(mktemp -d "${TMPDIR:-/tmp}/fleetpki-test-${run_id}.XXXXXX")
# The run's pid in its folder: another checkout's sweep (its own clusters, where this run's database is
# not) leaves a folder alone while this shell lives, between commands too.
echo $$ > "${deployment_dir}/.run-pid"
guard=$(mktemp -t fleetpki-test-guard.XXXXXX)
report=$(mktemp -t fleetpki-test-report.XXXXXX)
# This shell keeps the installation's environment (the guard's); the run's processes get the deployment's.
in_deployment=(env -u FLEETPKI_DATABASE_URL -u FLEETPKI_SERVICE_DATABASE_URL "FLEETPKI_PG_DATABASE=fleetpki_test_${run_id}" "FLEETPKI_HSM_TOKEN_PREFIX=fleetpki-test-${run_id}" "FLEETPKI_DEPLOYMENT_DIR=${deployment_dir}")
dropped=0
finish() {
  [ "$dropped" = 1 ] || "${in_deployment[@]}" "${node_run[@]}" scripts/test-deployment.ts drop || true
  rm -rf "$report" "$guard" "$deployment_dir"
}
trap finish EXIT
"${in_deployment[@]}" "${node_run[@]}" scripts/test-deployment.ts sweep
"${node_run[@]}" scripts/lib/installation-guard.ts record "$guard"
# A test file whose tests are done exits even if something it started still holds the event loop (a
# failed test's traffic loop, say): a failure must never turn into a CI run that hangs. The report is
# kept and checked afterwards: a test that started and has no verdict fails the run (a file's process
# that ended early, or its last verdicts lost on the way: scripts/lib/blocking-stdio.mjs says how).
status=0
"${in_deployment[@]}" "${node_run[@]}" --test --test-concurrency=1 --test-force-exit "${files[@]}" | tee "$report" || status=$?
"${node_run[@]}" scripts/lib/check-test-report.ts "$report" || status=1
# The deployment goes before the guard looks again: removing it must leave the installation alone too.
"${in_deployment[@]}" "${node_run[@]}" scripts/test-deployment.ts drop || status=1
dropped=1
"${node_run[@]}" scripts/lib/installation-guard.ts check "$guard" || status=1
exit "$status"
