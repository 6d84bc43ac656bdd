#!/usr/bin/env bash
# Sets up everything fleetpki needs on a Debian machine with Node.js, then starts the two local sites
# and migrates the database. Safe to run again: every step skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.21.0
# strongswan-pki and its plugins: the EST client the tests enrol with (pki --est, pki --estca); curl: the README recipe;
# chromium and a font: the browser the console's end-to-end tests drive (playwright-core).
# systemd: systemd-analyze, -sysusers and -tmpfiles for scripts/check-units.sh (the package only; it does not become init).
OS_PACKAGES=(systemd softhsm2 opensc postgresql redis-server openssl procps util-linux etcd-server etcd-client strongswan-pki libstrongswan-standard-plugins libstrongswan-extra-plugins curl chromium fonts-dejavu-core)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- Node.js -------------------------------------------------------------------------------------
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "fleetpki needs Node.js 20.10 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# --- OS packages ---------------------------------------------------------------------------------
missing=()
for pkg in "${OS_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing OS packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo); else
    echo "missing Debian packages ${missing[*]} and no root or sudo to install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- pnpm ----------------------------------------------------------------------------------------
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION"
  if ! npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null 2>&1; then
    # No rights for a global install: keep pnpm inside the git-ignored state folder instead.
    npm install --silent --prefix .fleetpki/tools "pnpm@$PNPM_VERSION" >/dev/null
    export PATH="$PWD/.fleetpki/tools/node_modules/.bin:$PATH"
  fi
fi

# --- node modules --------------------------------------------------------------------------------
# node-gyp cannot download Node's headers here; pkcs11js builds against the system's (see .npmrc).
export npm_config_nodedir=/usr
say "installing node modules"
pnpm install --frozen-lockfile --reporter=silent

# --- local sites ---------------------------------------------------------------------------------
say "starting the local sites (state in .fleetpki/)"
pnpm -s fleetpki sites up
pnpm -s fleetpki db migrate
