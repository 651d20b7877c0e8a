#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). Installs the Debian packages the tests
# need when they are missing, builds everything once in one profile, and runs every test from that build,
# including the slow real-time ones (FAXHUB_SLOW_TESTS=1).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libtiff-tools ghostscript libspandsp-dev libtiff-dev pkg-config sqlite3 poppler-utils kamailio)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

export FAXHUB_SLOW_TESTS=1
export CARGO_TERM_COLOR=never
# One build of every target (binaries included: the end-to-end tests start the real `faxhub`).
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast
