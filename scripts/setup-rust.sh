#!/usr/bin/env bash
# Rust for the demo prover (edition 2024: cargo 1.85 or newer), a cargo that works on PATH when this ends.
# Sourced by scripts/setup.sh (which defines say, fail and apt_install); runs alone too.
#   - a cargo on PATH that works: kept;
#   - rustup's proxy with toolchains installed but no default ("no default is configured"): `rustup default`
#     to the first installed toolchain (offline; set-up says so);
#   - otherwise Debian's cargo (cargo-web on Debian 12, whose cargo is 1.63); then, when rustup's proxy still
#     comes first on PATH with no toolchain, Debian's Rust is linked as its default toolchain
#     (`rustup toolchain link debian-system /usr && rustup default debian-system`), so `cargo` works for the
#     build, the tests and `uniprove run demo` alike.
# Exit 3 names the cargo found and the command that fixes it.
set -euo pipefail
if ! declare -F say >/dev/null; then
  say() { echo "setup: $*"; }
  fail() {
    echo "setup: $1" >&2
    echo "setup: fix: $2" >&2
    exit 3
  }
  apt_install() {
    local sudo=""
    [ "$(id -u)" != 0 ] && sudo="sudo"
    say "installing $* with apt-get"
    $sudo apt-get install -y -qq "$@" >/dev/null 2>&1 || {
      $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@"
    } || fail "apt-get could not install: $*" "install them yourself, then run this again"
  }
fi

# A cargo program that runs and is 1.85 or newer.
cargo_works() {
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  [[ $v =~ ^cargo\ 1\.([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 85 ]
}
cargo_ok() { cargo_works cargo; }
# rustup's proxy answers for cargo but has no toolchain to run.
proxy_without_default() {
  command -v rustup >/dev/null 2>&1 || return 1
  cargo_ok && return 1
  local out
  out=$(cargo --version 2>&1 || true)
  [[ $out == *"no default is configured"* || $out == *"rustup default"* ]]
}

if ! cargo_ok && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
if cargo_ok; then
  say "Rust: $(cargo --version) (present)"
else
  if proxy_without_default; then
    toolchain=$(rustup toolchain list 2>/dev/null | { grep -v '^no installed' || true; } | head -1 | cut -d' ' -f1)
    if [ -n "$toolchain" ]; then
      say "Rust: rustup has toolchains but no default; making $toolchain the default (rustup default $toolchain)"
      rustup default "$toolchain" >/dev/null 2>&1 || true
      hash -r
    fi
  fi
  if ! cargo_ok; then
    # Debian 12 ships Rust 1.63 as cargo, and a current one as cargo-web; newer releases ship a current cargo.
    if ! cargo_works /usr/bin/cargo; then
      if apt-cache show cargo-web >/dev/null 2>&1; then apt_install cargo-web; else apt_install cargo; fi
      hash -r
    fi
    if ! cargo_ok && cargo_works /usr/bin/cargo && proxy_without_default; then
      say "Rust: rustup's cargo comes first on PATH and has no toolchain; linking Debian's Rust as its default (rustup toolchain link debian-system /usr; rustup default debian-system)"
      rustup toolchain link debian-system /usr >/dev/null 2>&1 && rustup default debian-system >/dev/null 2>&1 || true
      hash -r
    fi
  fi
  if ! cargo_ok; then
    found=$(command -v cargo 2>/dev/null || echo none)
    fix="install Rust with rustup (https://rustup.rs), then run this again"
    if proxy_without_default; then
      fix="rustup's proxy at $found has no default toolchain: run \`rustup default stable\` (online), or \`rustup toolchain link debian-system /usr && rustup default debian-system\` after apt-get install cargo-web"
    fi
    fail "cargo 1.85 or newer is needed for the demo prover; this machine has: $found ($(cargo --version 2>&1 | head -1))" "$fix"
  fi
  say "Rust: $(cargo --version)"
fi
