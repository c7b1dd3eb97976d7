#!/usr/bin/env bash
# Cold and warm build times and peak memory of xbuild against its peer
# (mmdebstrap --variant=extract + umoci), both making an arm64 cowsay image
# from the host's own Debian mirror (read from its apt sources file); and
# how long `xbuild plan` takes warm against apt's own answer to the same
# question (`apt-get install --simulate` in a private arm64 apt directory,
# its lists already fetched).
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
# A warm rebuild leaves the outputs in place (an unchanged image is not
# written again); "outputs removed" writes them anew from the cache.
hyperfine -N --runs "$runs" --warmup 2 --export-json "$work/xb-warm.json" \
    --command-name "xbuild warm" "$xb_warm"
hyperfine --runs "$runs" --export-json "$work/xb-warm-fresh.json" \
    --prepare "rm -rf $work/xb-out" \
    --command-name "xbuild warm, outputs removed" "$xb_warm"
xb_plan="$xbuild plan $repo/examples/cowsay --target aarch64-linux --cache-dir $work/xb-warm-cache"
hyperfine -N --runs "$runs" --warmup 2 --export-json "$work/xb-plan.json" \
    --command-name "xbuild plan warm" "$xb_plan"
# apt's answer: a private state directory for arm64 with the host's sources.
apt_dir="$work/apt"
mkdir -p "$apt_dir/etc/apt/sources.list.d" "$apt_dir/etc/apt/preferences.d" \
    "$apt_dir/var/lib/apt/lists/partial" "$apt_dir/var/cache/apt/archives/partial" \
    "$apt_dir/var/lib/dpkg"
cp "$sources" "$apt_dir/etc/apt/sources.list.d/"
touch "$apt_dir/var/lib/dpkg/status"
cat > "$apt_dir/apt.conf" <<APT
Dir "$apt_dir/";
Dir::State::status "$apt_dir/var/lib/dpkg/status";
Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT
APT_CONFIG="$apt_dir/apt.conf" apt-get -qq update >/dev/null
peer_plan="env APT_CONFIG=$apt_dir/apt.conf apt-get install --simulate --no-install-recommends -qq cowsay"
hyperfine -N --runs "$runs" --warmup 2 --export-json "$work/peer-plan.json" \
    --command-name "apt-get --simulate" "$peer_plan"
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
xb_warm_rss=$(rss_mb $xb_warm)
peer_cold_rss=$(rss_mb $peer)
peer_warm_rss=$(rss_mb $peer)

xb_cold_s=$(median "$work/xb-cold.json")
xb_warm_s=$(median "$work/xb-warm.json")
xb_warm_fresh_s=$(median "$work/xb-warm-fresh.json")
xb_plan_s=$(median "$work/xb-plan.json")
peer_plan_s=$(median "$work/peer-plan.json")
peer_cold_s=$(median "$work/peer-cold.json")
peer_warm_s=$(median "$work/peer-warm.json")
ratio() { perl -e 'printf "%.1f", $ARGV[0] / $ARGV[1]' "$1" "$2"; }

cat <<TABLE

arm64 cowsay image, median of $runs runs (hyperfine), peak RSS of one run:

| tool | cold median (s) | warm median (s) | peak RSS cold (MB) | peak RSS warm (MB) |
|---|---:|---:|---:|---:|
| xbuild | $xb_cold_s | $xb_warm_s | $xb_cold_rss | $xb_warm_rss |
| mmdebstrap + umoci | $peer_cold_s | $peer_warm_s | $peer_cold_rss | $peer_warm_rss |

xbuild warm with its outputs removed (written again from the cache): $xb_warm_fresh_s s

| what would be installed, warm | median (s) |
|---|---:|
| xbuild plan | $xb_plan_s |
| apt-get install --simulate (private arm64 apt dir) | $peer_plan_s |

speed-up of xbuild: cold $(ratio "$peer_cold_s" "$xb_cold_s")×, warm $(ratio "$peer_warm_s" "$xb_warm_s")×, plan $(ratio "$peer_plan_s" "$xb_plan_s")×
load average when measured: $(cut -d' ' -f1-3 /proc/loadavg)
TABLE
