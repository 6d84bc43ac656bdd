#!/usr/bin/env bash
# Sets up everything fleetpki needs on a Debian machine with Node.js, then starts the two local sites
# and migrates the database. Safe to run again: every step skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.21.0
# strongswan-pki and its plugins: the EST client the tests enrol with (pki --est, pki --estca); curl: the README recipe;
# chromium and a font: the browser the console's end-to-end tests drive (playwright-core).
# pgbackrest: WAL archive, backups and restores of the clusters (issue 35); patroni: runs them with database.ha patroni
# (python3-idna: Patroni's HTTPS client to etcd over TLS needs it, and Debian's urllib3 only suggests it).
# systemd: systemd-analyze, -sysusers and -tmpfiles for scripts/check-units.sh (the package only; it does not become init).
# prometheus: promtool checks and tests the alert rules (issue 39)
OS_PACKAGES=(systemd softhsm2 opensc postgresql pgbackrest patroni python3-idna redis-server openssl procps util-linux etcd-server etcd-client strongswan-pki libstrongswan-standard-plugins libstrongswan-extra-plugins curl chromium fonts-dejavu-core prometheus)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- Node.js -------------------------------------------------------------------------------------
# Any Node with npm starts the setup; the project itself runs on the Node pinned in scripts/env.sh,
# installed from the npm registry (node-linux-<arch>: binary and headers) into .fleetpki/tools/node.
source scripts/env.sh
if [ "$("$FLEETPKI_NODE_HOME/bin/node" --version 2>/dev/null)" != "v$FLEETPKI_NODE_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "fleetpki installs its Node.js $FLEETPKI_NODE_VERSION with npm, and there is no npm: install Node.js with npm first (e.g. apt-get install nodejs npm)" >&2
    exit 1
  fi
  say "installing Node.js $FLEETPKI_NODE_VERSION ($FLEETPKI_NODE_PACKAGE) into .fleetpki/tools/node"
  npm install --silent --no-audit --no-fund --prefix "$FLEETPKI_NODE_PREFIX" "$FLEETPKI_NODE_PACKAGE@$FLEETPKI_NODE_VERSION" >/dev/null
  source scripts/env.sh
fi
if [ "$(node --version 2>/dev/null)" != "v$FLEETPKI_NODE_VERSION" ]; then
  echo "fleetpki runs on Node.js $FLEETPKI_NODE_VERSION, and the node on PATH ($(command -v node)) says $(node --version 2>&1)" >&2
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
  # Debian's prometheus package enables a server on :9090 where systemd runs; fleetpki wanted promtool
  # (and a Prometheus that tests and `sites up --prometheus` start themselves). One installed just now
  # for us is turned off; one that was there before is the machine owner's and left alone.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# --- pnpm ----------------------------------------------------------------------------------------
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION"
  if ! npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null 2>&1; then
    # No rights for a global install: keep pnpm inside the git-ignored state folder instead.
    npm install --silent --prefix .fleetpki/tools "pnpm@$PNPM_VERSION" >/dev/null
    source scripts/env.sh
  fi
fi

# --- node modules --------------------------------------------------------------------------------
# node-gyp cannot download Node's headers here: pkcs11js builds against the installed Node's own
# (npm_config_nodedir, from scripts/env.sh).
say "installing node modules"
pnpm install --frozen-lockfile --reporter=silent

# --- local sites ---------------------------------------------------------------------------------
say "starting the local sites (state in .fleetpki/)"
pnpm -s fleetpki sites up
pnpm -s fleetpki db migrate
