#!/usr/bin/env bash
# pnpm package DIR: builds fleetpki and lays out an installation in DIR as a host runs it (issue 34):
#   DIR/services/NAME/   each program's build (dist/) with its production dependencies only
#                        (`pnpm deploy --prod`: no tsx, TypeScript, eslint or @types; pkcs11js built)
#   DIR/migrations/      the SQL migrations (`fleetpki db migrate`)
#   DIR/fleetpki-installation.json   marks DIR as the root (findRepoRoot); what was built, from where
# Programs run with `node DIR/services/NAME/dist/main.js`; they start each other from the build too
# (entryPoint: an installation's default runtime is compiled). DIR is replaced if it is an installation,
# refused if it is anything else.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/package.sh DIR}"
out="$(realpath -m "$out")"
marker=fleetpki-installation.json
if [ -e "$out" ] && [ ! -f "$out/$marker" ] && [ -n "$(ls -A "$out")" ]; then
  echo "package.sh: $out exists and is not a fleetpki installation; choose an empty or new folder" >&2
  exit 2
fi
# FLEETPKI_PACKAGE_SKIP_BUILD=1: the caller has just built (scripts/test.sh).
if [ "${FLEETPKI_PACKAGE_SKIP_BUILD:-0}" != 1 ]; then pnpm -s build; fi
rm -rf "$out"
mkdir -p "$out/services"
# One self-contained folder per program, as each runs under its own user and unit; the versions are the
# workspace lockfile's (checked when it was installed), the packages those already in the store, so the
# deploys run side by side. Each package ships its dist/ only ("files" in its package.json).
pids=()
for dir in services/*/; do
  name="$(basename "$dir")"
  pnpm --silent --filter "@fleetpki/$name" deploy --prod --prefer-offline "$out/services/$name" > "$out/deploy-$name.log" 2>&1 &
  pids+=("$!:$name")
done
failed=0
for entry in "${pids[@]}"; do
  if ! wait "${entry%%:*}"; then echo "package.sh: pnpm deploy of ${entry#*:} failed:" >&2; cat "$out/deploy-${entry#*:}.log" >&2; failed=1; fi
  rm -f "$out/deploy-${entry#*:}.log"
done
[ "$failed" = 0 ] || exit 1
# A deployed folder is no workspace: left there, pnpm's copy of the workspace file would make each
# program's folder its own root (findRepoRoot) instead of DIR.
rm -f "$out"/services/*/pnpm-workspace.yaml
cp -r migrations "$out/migrations"
printf '{ "commit": "%s", "node": "%s", "built": "%s" }\n' "$(git rev-parse HEAD)" "$(node --version)" "$(date -u +%FT%TZ)" > "$out/$marker"
echo "installation in $out ($(du -sh "$out" | cut -f1))"
