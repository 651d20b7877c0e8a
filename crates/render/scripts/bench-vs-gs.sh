#!/bin/sh
# PDF → fax pages at 204×196: our hayro path against ghostscript on the same PDF, with
# wall time and peak memory of each (GNU time). Usage: scripts/bench-vs-gs.sh [PDF] [RUNS]
set -eu
cd "$(dirname "$0")/.."
PDF=${1:-benches/data/bench20.pdf}
RUNS=${2:-5}
TARGET=${CARGO_TARGET_DIR:-../../target}
command -v gs >/dev/null || { echo "ghostscript (gs) is required" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time (GNU time) is required" >&2; exit 1; }
cargo build -q --release -p render --example convert_pdf
OURS="$TARGET/release/examples/convert_pdf"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PAGES=$(gs -q -dNODISPLAY --permit-file-read="$PDF" -c "($PDF) (r) file runpdfbegin pdfpagecount = quit")

# best wall time (s) and peak RSS (KiB) over RUNS runs of a command
measure() {
    best=""; peak=0
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        t0=$(date +%s%N)
        /usr/bin/time -f "%M" -o "$OUT/time" "$@" >/dev/null 2>&1
        t1=$(date +%s%N)
        t=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
        read -r m < "$OUT/time"
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
        [ "$m" -gt "$peak" ] && peak=$m
        i=$((i + 1))
    done
    echo "$best $peak"
}

set -- $(measure "$OURS" "$PDF" fine); ours_t=$1; ours_m=$2
set -- $(measure "$OURS" "$PDF" fine "$OUT/ours.pbm"); ourspbm_t=$1; ourspbm_m=$2
export THREADS=2
set -- $(measure "$OURS" "$PDF" fine); ours2_t=$1; ours2_m=$2
unset THREADS
set -- $(measure gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=tiffg4 -r204x196 -sOutputFile="$OUT/gs.tif" "$PDF"); g4_t=$1; g4_m=$2
set -- $(measure gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pbmraw -r204x196 -sOutputFile="$OUT/gs.pbm" "$PDF"); pbm_t=$1; pbm_m=$2

rate() { echo "scale=1; $PAGES / $1" | bc; }
# Wall time of whole processes (start-up included, as a user would run them).
ratio() { echo "scale=2; $1 / $2" | bc; }
printf '%-34s %8s %10s %12s\n' "$PAGES pages at 204x196, best of $RUNS" "seconds" "pages/s" "peak RSS KiB"
printf '%-34s %8s %10s %12s\n' "render (hayro), bitmaps only" "$ours_t" "$(rate "$ours_t")" "$ours_m"
printf '%-34s %8s %10s %12s\n' "render (hayro), writing PBM" "$ourspbm_t" "$(rate "$ourspbm_t")" "$ourspbm_m"
printf '%-34s %8s %10s %12s\n' "render (hayro), 2 threads" "$ours2_t" "$(rate "$ours2_t")" "$ours2_m"
printf '%-34s %8s %10s %12s\n' "gs -sDEVICE=tiffg4" "$g4_t" "$(rate "$g4_t")" "$g4_m"
printf '%-34s %8s %10s %12s\n' "gs -sDEVICE=pbmraw" "$pbm_t" "$(rate "$pbm_t")" "$pbm_m"
echo "speed ratio vs gs tiffg4: $(ratio "$g4_t" "$ours_t")x (2 threads: $(ratio "$g4_t" "$ours2_t")x); vs gs pbmraw (both writing PBM): $(ratio "$pbm_t" "$ourspbm_t")x"
echo "memory ratio (ours / gs tiffg4): $(ratio "$ours_m" "$g4_m")"
