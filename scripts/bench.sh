#!/usr/bin/env bash
# Supervisor benchmarks: builds faxhub and the bench harnesses in release and runs one (loopback only).
#   scripts/bench.sh [ARGS]         submissions and dispatch latency (faxhub-bench; e.g. --jobs 5000 --multipart)
#   scripts/bench.sh admin [ARGS]   phonebook search and settings push (faxhub-bench-admin; e.g. --entries 100000)
#   scripts/bench.sh uploads [ARGS] 64 concurrent uploads of the worst allowed image: supervisor memory and
#                                   /healthz latency meanwhile (faxhub-bench --image-uploads; e.g. --image jpeg)
#   scripts/bench.sh codecs|pdf     faxhub convert side by side with tiffcp / ghostscript (faxhub-bench-imaging)
#   scripts/bench.sh t38 [ARGS]     concurrent paced T.38 sessions and the SpanDSP pair (faxhub-bench-t38)
#   scripts/bench.sh ecm [ARGS]     a 3-page ECM fax under loss, faxhub and SpanDSP as senders (faxhub-bench-ecm)
#   scripts/bench.sh sip [ARGS]     SIP calls set up and torn down per second through Kamailio (faxhub-bench-sip)
# Criterion benchmarks of the parts: cargo bench -p t4 (codecs), cargo bench -p render (PDF to pages).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p faxhub -p testkit --bins
if [[ "${1:-}" == codecs || "${1:-}" == pdf ]]; then
  exec ./target/release/faxhub-bench-imaging "$@"
fi
if [[ "${1:-}" == t38 ]]; then
  shift
  exec ./target/release/faxhub-bench-t38 "$@"
fi
if [[ "${1:-}" == ecm ]]; then
  shift
  exec ./target/release/faxhub-bench-ecm "$@"
fi
if [[ "${1:-}" == sip ]]; then
  shift
  exec ./target/release/faxhub-bench-sip "$@"
fi
if [[ "${1:-}" == uploads ]]; then
  shift
  exec ./target/release/faxhub-bench --image-uploads 64 "$@"
fi
if [[ "${1:-}" == admin ]]; then
  shift
  exec ./target/release/faxhub-bench-admin "$@"
fi
exec ./target/release/faxhub-bench "$@"
