#!/usr/bin/env bash
# One-command set-up on Debian/Ubuntu: everything `uniprove run demo` and `npm test` need, each step skipped
# when what it installs is there already (a second run changes nothing and says so).
#   system packages  strace (discover), bubblewrap (verify), gcc/make (test fixtures), tar/xz (archives),
#                    qemu-system-x86 + qemu-utils (runs), ca-certificates (Ops's common.tar.gz)
#   Rust             cargo >= 1.85 builds the demo prover (Debian's cargo-web on bookworm)
#   npm              the dependencies, then the build (bin/uniprove.js runs dist/)
#   Ops and Nanos    `uniprove setup`: kept when installed; else from the toolchain folder named by
#                    UNIPROVE_TOOLCHAIN (checked against its SHA256SUMS); else online, as Ops's installer does
# Exit 3 names what could not be installed and how to get it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
fail() {
  echo "setup: $1" >&2
  echo "setup: fix: $2" >&2
  exit 3
}

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    fail "no apt-get on this machine to install: $*" "install them with your package manager, then run this again"
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    fail "installing $* needs root, and sudo is not installed" "run this as root, or install them yourself"
  fi
  say "installing $* with apt-get"
  if ! $SUDO apt-get install -y -qq "$@" >/dev/null 2>&1; then
    # A fresh machine's package lists may be empty: read them, then try again with the output shown.
    $SUDO apt-get update -qq || fail "apt-get update failed" "check this machine's package sources and network"
    $SUDO apt-get install -y -qq "$@" || fail "apt-get could not install: $*" "install them yourself, then run this again"
  fi
}

# System packages: program:package pairs.
missing=()
# prometheus: the metrics tests scrape `--metrics-port` with a real one (test/helpers/prometheus.ts).
for pair in strace:strace bwrap:bubblewrap gcc:gcc make:make tar:tar xz:xz-utils \
  qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils chromium:chromium prometheus:prometheus; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
  # Debian's package starts a system Prometheus on :9090; the tests start their own, so none is left running.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 \
    && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || say "note: could not stop the prometheus service (systemctl disable --now prometheus)"
  fi
else
  say "system packages: all present (strace, bubblewrap, gcc, make, tar, xz, qemu, chromium, prometheus, ca-certificates)"
fi

# Rust, for the demo prover (edition 2024: cargo 1.85 or newer): scripts/setup-rust.sh.
# shellcheck source=scripts/setup-rust.sh
source scripts/setup-rust.sh

# npm dependencies and the build, each redone only when its inputs changed.
if [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm dependencies: up to date"
else
  npm ci --no-audit --no-fund || fail "npm ci failed" "check that Node 20 or newer and the npm registry are reachable"
fi
if [ -f dist/cli/main.js ] && [ -z "$(find src tsconfig.json tsconfig.build.json package.json -newer dist/cli/main.js -print -quit)" ]; then
  say "build: up to date"
else
  npm run build --silent
  say "build: done (dist/)"
fi

# Ops, a Nanos release and common.tar.gz, with the CLI's own set-up (the same as `uniprove doctor --fix`).
node bin/uniprove.js setup
say "done. Prove inside Nanos: node bin/uniprove.js run demo"
