#!/usr/bin/env bash
# The whole check, as CI runs it (.ci/run calls this, and the README documents it):
# install the Kafka-compatible test broker when it is missing, then formatting, lints and
# every test. Tests that need the broker find it on PATH, in ~/.cargo/bin or at $TANSU_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TANSU_BIN:-}" ] && ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "tests/run.sh: installing the Kafka-compatible test broker (tansu 0.6.0; about 10 minutes on 2 cores)" >&2
  cargo install tansu --version 0.6.0 --features dynostore --locked
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
