#!/usr/bin/env bash
# Checks the systemd units in infra/systemd/ without running them (these machines have no systemd as
# PID 1): `systemd-analyze verify` on every unit, systemd-sysusers and systemd-tmpfiles on our files,
# and `systemd-analyze security --offline=true` scoring each service, failing above MAX_EXPOSURE.
# Everything happens in a throw-away root (--root): the host's own units (for sysinit.target, Debian's
# redis-server.service) copied in, ours installed where a package would put them, and a stub for every
# program the units start, since verify refuses a unit whose ExecStart= is not executable. Programs of
# the fleetpki install (/opt/fleetpki, built elsewhere) are stubbed as they are; any other program must
# exist on this machine (a typo in /usr/bin/etcd fails here), then gets a stub in the root too.
# Usage: bash scripts/check-units.sh   (needs the Debian package `systemd`, not systemd as init)
set -euo pipefail
cd "$(dirname "$0")/.."
UNITS_DIR=${UNITS_DIR:-infra/systemd}
# Exposure as systemd-analyze security counts it (0 best, 10 worst; up to 2.0 "OK", 2.1-4.9 "MEDIUM").
# Every unit of ours is under it; MemoryDenyWriteExecute=no (V8) and no PrivateUsers= cost the
# Node services about 0.4 (docs/deploy.md, "Security").
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  command -v "$tool" >/dev/null || { echo "check-units: $tool not found (apt-get install systemd; scripts/setup.sh does)" >&2; exit 1; }
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp -a "$UNITS_DIR"/*.service "$UNITS_DIR"/*.target "$UNITS_DIR"/*.timer "$UNITS_DIR"/*.d "$root/etc/systemd/system/"
rm -rf "$root/etc/systemd/system/sysusers.d" "$root/etc/systemd/system/tmpfiles.d"
cp "$UNITS_DIR"/sysusers.d/*.conf "$root/usr/lib/sysusers.d/"
cp "$UNITS_DIR"/tmpfiles.d/*.conf "$root/usr/lib/tmpfiles.d/"
# Debian's base accounts the units and tmpfiles name (postgres, redis, etcd come from their packages).
cp /etc/passwd /etc/group "$root/etc/"

failed=0
fail() { echo "check-units: $*" >&2; failed=1; }

# --- users and folders -----------------------------------------------------------------------------
out=$(systemd-sysusers --root="$root" 2>&1) || fail "systemd-sysusers: $out"
[ -z "$out" ] || echo "$out"
out=$(systemd-tmpfiles --root="$root" --create 2>&1) || fail "systemd-tmpfiles: $out"
[ -z "$out" ] || echo "$out"

# --- programs the units start ----------------------------------------------------------------------
while read -r program; do
  if [[ $program != /opt/fleetpki/* ]] && [ ! -x "$program" ]; then fail "$program (started by a unit) is not on this machine"; fi
  mkdir -p "$root$(dirname "$program")"
  [ -e "$root$program" ] || { printf '#!/bin/sh\n' > "$root$program"; chmod 755 "$root$program"; }
done < <(grep -rhoE '^Exec(Start|StartPre|StartPost|Stop|StopPost|Reload|Condition)=[-@:+!]*/[^ ]+' "$UNITS_DIR" /usr/lib/systemd/system/redis-server.service | sed -E 's/^[^=]*=[-@:+!]*//' | sort -u)

# --- verify ----------------------------------------------------------------------------------------
units=()
for f in "$UNITS_DIR"/*.service "$UNITS_DIR"/*.target "$UNITS_DIR"/*.timer; do
  u=$(basename "$f")
  [[ $u == *@.service ]] && u=${u/@.service/@1.service}
  units+=("$u")
done
units+=(redis-server.service)
echo "== systemd-analyze verify ${units[*]}"
# verify prints nothing for a clean unit; any line (unknown setting, bad value, missing program) fails.
out=$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1) || fail "systemd-analyze verify failed"
if [ -n "$out" ]; then echo "$out"; fail "systemd-analyze verify reported problems"; else echo "clean"; fi

# --- security scores -------------------------------------------------------------------------------
echo "== systemd-analyze security --offline=true (exposure: 0 best, 10 worst; fails above $MAX_EXPOSURE)"
printf '%-40s %8s  %s\n' unit exposure level
for u in "${units[@]}"; do
  [[ $u == *.service ]] || continue
  line=$(systemd-analyze security --offline=true --root="$root" --no-pager "$u" 2>&1 | grep 'Overall exposure level' || true)
  score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
  level=$(sed -E 's/.*: [0-9.]+ ([A-Z]+).*/\1/' <<<"$line")
  if [ -z "$line" ]; then fail "no score for $u"; continue; fi
  printf '%-40s %8s  %s\n' "$u" "$score" "$level"
  awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }' && fail "$u: exposure $score is above $MAX_EXPOSURE"
done

[ "$failed" -eq 0 ] || { echo "check-units: FAILED" >&2; exit 1; }
echo "check-units: every unit verified, every service at or under $MAX_EXPOSURE"
