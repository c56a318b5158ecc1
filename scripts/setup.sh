#!/usr/bin/env bash
# One-command set-up on Debian/Ubuntu: the system tools uniprove drives, then the npm dependencies and the build.
#   strace      runtime discovery (uniprove discover / package)
#   bubblewrap  running a package from its own files (uniprove verify)
#   gcc, tar    test fixtures, image tarballs
# Ops and a Nanos kernel (for uniprove run) are not installed here: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for pair in strace:strace bwrap:bubblewrap gcc:gcc make:make tar:tar; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi

npm ci --no-audit --no-fund
echo "setup: done. Try: node bin/uniprove.js verify demo"
