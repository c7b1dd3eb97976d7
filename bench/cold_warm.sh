#!/usr/bin/env bash
# Cold and warm build times and peak memory of xbuild against its peer
# (mmdebstrap --variant=extract + umoci), both making an arm64 cowsay image
# from the host's own Debian mirror (read from its apt sources file).
#
# usage: bench/cold_warm.sh            (RUNS=5 by default, at least 5)
# env:   RUNS, SOURCES (default /etc/apt/sources.list.d/debian.sources),
#        CARGO_TARGET_DIR
# Needs: hyperfine, mmdebstrap, umoci, /usr/bin/time, perl; root for
# mmdebstrap.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
runs=${RUNS:-5}
if [ "$runs" -lt 5 ]; then runs=5; fi
sources=${SOURCES:-/etc/apt/sources.list.d/debian.sources}
if [ ! -e "$sources" ]; then
    sources=/etc/apt/sources.list
fi
for tool in hyperfine mmdebstrap umoci perl /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done

cargo build --release --quiet
xbuild="${CARGO_TARGET_DIR:-$repo/target}/release/xbuild"
[ -x "$xbuild" ] || { echo "error: no $xbuild after cargo build" >&2; exit 1; }

work=$(mktemp -d /tmp/xbuild-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

xb_cold="$xbuild build $repo/examples/cowsay --target aarch64-linux --out $work/xb-out --cache-dir $work/xb-cold-cache"
xb_warm="$xbuild build $repo/examples/cowsay --target aarch64-linux --out $work/xb-out --cache-dir $work/xb-warm-cache"
peer="bash $repo/bench/peer.sh $work/peer $sources"

hyperfine --runs "$runs" --export-json "$work/xb-cold.json" \
    --prepare "rm -rf $work/xb-out $work/xb-cold-cache" \
    --command-name "xbuild cold" "$xb_cold"
# Fill the warm cache once, then time rebuilds that only write outputs.
$xb_warm >/dev/null 2>&1
hyperfine --runs "$runs" --export-json "$work/xb-warm.json" \
    --prepare "rm -rf $work/xb-out" \
    --command-name "xbuild warm" "$xb_warm"
hyperfine --runs "$runs" --export-json "$work/peer-cold.json" \
    --prepare "rm -rf $work/peer" \
    --command-name "mmdebstrap+umoci cold" "$peer"
# The peer keeps no cache: warm is the same work once more, after a warmup.
hyperfine --runs "$runs" --warmup 1 --export-json "$work/peer-warm.json" \
    --command-name "mmdebstrap+umoci warm" "$peer"

median() {
    perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); printf "%.3f", $j->{results}[0]{median}' < "$1"
}
# Peak resident set, in MB, of the largest process of one run of "$@"
# (GNU time reports the maximum over the command and its waited children).
rss_mb() {
    /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>&1
    perl -e 'printf "%.0f", $ARGV[0] / 1024' "$(tail -n 1 "$work/rss")"
}

rm -rf "$work/xb-out" "$work/xb-cold-cache"
xb_cold_rss=$(rss_mb $xb_cold)
rm -rf "$work/xb-out"
xb_warm_rss=$(rss_mb $xb_warm)
peer_cold_rss=$(rss_mb $peer)
peer_warm_rss=$(rss_mb $peer)

xb_cold_s=$(median "$work/xb-cold.json")
xb_warm_s=$(median "$work/xb-warm.json")
peer_cold_s=$(median "$work/peer-cold.json")
peer_warm_s=$(median "$work/peer-warm.json")
ratio() { perl -e 'printf "%.1f", $ARGV[0] / $ARGV[1]' "$1" "$2"; }

cat <<TABLE

arm64 cowsay image, median of $runs runs (hyperfine), peak RSS of one run:

| tool | cold median (s) | warm median (s) | peak RSS cold (MB) | peak RSS warm (MB) |
|---|---:|---:|---:|---:|
| xbuild | $xb_cold_s | $xb_warm_s | $xb_cold_rss | $xb_warm_rss |
| mmdebstrap + umoci | $peer_cold_s | $peer_warm_s | $peer_cold_rss | $peer_warm_rss |

speed-up of xbuild: cold $(ratio "$peer_cold_s" "$xb_cold_s")×, warm $(ratio "$peer_warm_s" "$xb_warm_s")×
TABLE
