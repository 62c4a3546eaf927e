#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, then every test.
# Installs what the tests need (nothing beyond the pinned Rust toolchain yet) by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
rustc --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, property, integration, CLI)"
cargo test --workspace --locked

printf '\nall checks passed\n'
