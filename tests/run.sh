#!/usr/bin/env bash
# The whole test suite, from a fresh clone. Installs what the tests need by itself (pinned
# Python tools in target/tools/: moto, cfn-lint, checkov, the SAM CLI, cargo-lambda, zig;
# Debian's chromium and a pinned playwright-core for the dashboard test), starts a local AWS
# endpoint (moto) on a free loopback port, and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/tools.sh

step() { printf '\n==> %s\n' "$*"; }
trap grd_moto_stop EXIT

step "toolchain"
cargo --version
rustc --version

step "tools (pinned, in target/tools)"
grd_tools_venv
grd_sam_venv
grd_checkov_venv

step "template: cfn-lint (+ serverless rules), sam validate (--lint), checkov, role check"
grd_lint_template

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings (with and without the aws features)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo clippy -p grd-cli --all-targets --locked -- -D warnings

step "local AWS endpoint (moto)"
grd_moto_start

step "cargo test: unit, property, integration, handlers, local endpoint, contract, CLI"
cargo test --workspace --all-features --locked

step "dashboard in headless Chromium (installs chromium and playwright-core when missing)"
source tests/browser/browser.sh
GRD_BIN=target/debug/grd GRD_SHOT=target/dashboard.png grd_browser_test

step "sam build: an arm64 bootstrap for every function"
grd_sam_build

step "the real function binaries under cargo lambda watch, invoked with the sample events"
grd_lambda_e2e

printf '\nall checks passed\n'
