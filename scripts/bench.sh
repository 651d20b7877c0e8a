#!/usr/bin/env bash
# Supervisor benchmark: builds faxhub and the bench harness in release and runs it (loopback only).
# Extra arguments go to faxhub-bench (e.g. --jobs 5000 --multipart).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p faxhub -p testkit --bins
exec ./target/release/faxhub-bench "$@"
