#!/usr/bin/env bash
# pnpm docs:screenshots: the README's console screenshots (docs/console/*.png). test/console.test.ts takes
# them in a test deployment of its own, into a temporary folder; they are copied into docs/console/ only
# when the run passed (its installation guard included), so the pictures show screens the test checked.
set -euo pipefail
cd "$(dirname "$0")/.."
shots=$(mktemp -d -t fleetpki-screenshots.XXXXXX)
trap 'rm -rf "$shots"' EXIT
FLEETPKI_CONSOLE_SCREENSHOTS="$shots" bash scripts/run-tests.sh test/console.test.ts
mkdir -p docs/console
cp "$shots"/*.png docs/console/
echo "docs/console: $(cd "$shots" && ls -- *.png | tr '\n' ' ')"
