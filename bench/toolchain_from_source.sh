#!/usr/bin/env bash
# A cross toolchain built from source, once, and what it costs against the
# toolchain xbuild fetches when Debian has one — measured in the same run.
#
# Debian ships no cross compiler for musl targets, so GNU hello (a C recipe,
# examples/hello-c) for aarch64-linux-musl needs binutils, GCC (C, static
# libgcc) and musl built from Debian's verified sources
# (`--allow-toolchain-build`). The peer is the same recipe for aarch64-linux,
# whose cross GCC is Debian's prebuilt cross packages, fetched and unpacked.
#
# Rows:
# - source toolchain, empty cache: the whole build, and each step of the
#   toolchain build from its log (unpacking sources is the time before the
#   first step);
# - source toolchain, warm: the same build again (the toolchain and the
#   build are cache hits);
# - Debian cross toolchain, empty cache / warm: the peer.
#
# usage: bench/toolchain_from_source.sh
# env:   KEEP_WORK=1 keeps the caches.
# Needs: network access to the Debian mirror of the host's apt sources, the
# host C/C++ compiler and make (scripts/setup.sh installs them), perl.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
cargo build --release --quiet
xbuild="${CARGO_TARGET_DIR:-$repo/target}/release/xbuild"
project=$repo/examples/hello-c

work=$(mktemp -d /tmp/xbuild-bench-toolchain.XXXXXX)
cleanup() {
    if [ "${KEEP_WORK:-}" = 1 ]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

now() { perl -MTime::HiRes=time -e 'printf "%.3f", time'; }
elapsed() { perl -e 'printf "%.1f", $ARGV[1] - $ARGV[0]' "$1" "$2"; }

# run NAME CACHE TARGET [FLAGS...]: one build, its wall time in $NAME.
run() {
    local name=$1 cache=$2 target=$3
    shift 3
    local start end
    start=$(now)
    XBUILD_CACHE_DIR=$cache "$xbuild" build "$project" --target "$target" \
        --out "$work/out-$name" --json "$@" >"$work/$name.json" 2>"$work/$name.err" || {
        cat "$work/$name.err" >&2
        exit 1
    }
    end=$(now)
    printf -v "$name" '%s' "$(elapsed "$start" "$end")"
}

echo "building the musl toolchain from source: this takes a while" >&2
run source_cold "$work/cache-source" aarch64-linux-musl --allow-toolchain-build
run source_warm "$work/cache-source" aarch64-linux-musl
run debian_cold "$work/cache-debian" aarch64-linux
run debian_warm "$work/cache-debian" aarch64-linux

log=$(ls "$work"/cache-source/logs-v1/toolchain-*.log)
toolchain_seconds() {
    perl -MJSON::PP -e '
        local $/; my $r = decode_json(<STDIN>);
        for my $n (@{$r->{nodes}}) { printf "%.1f", $n->{seconds} if $n->{kind} eq "toolchain" }
    ' <"$1"
}

cores=$(nproc)
echo
echo "GNU hello (examples/hello-c), C recipe, on $cores cores, one run each"
echo
printf '| %-56s | %10s |\n' "what" "seconds"
printf '|%s|%s|\n' "$(printf -- '-%.0s' {1..58})" "$(printf -- '-%.0s' {1..12})"
printf '| %-56s | %10s |\n' "aarch64-linux-musl, empty cache (toolchain from source)" "$source_cold"
printf '| %-56s | %10s |\n' "  of it, the toolchain node" "$(toolchain_seconds "$work/source_cold.json")"
perl -ne 'printf "| %-56s | %10s |\n", "    $1", $2 if /^xbuild: step done: (.*) \((\d+) s,/' "$log"
printf '| %-56s | %10s |\n' "aarch64-linux-musl, warm (all hits)" "$source_warm"
printf '| %-56s | %10s |\n' "aarch64-linux, empty cache (Debian cross packages)" "$debian_cold"
printf '| %-56s | %10s |\n' "  of it, the toolchain node" "$(toolchain_seconds "$work/debian_cold.json")"
printf '| %-56s | %10s |\n' "aarch64-linux, warm (all hits)" "$debian_warm"
echo
du -sh "$work"/cache-source/toolchains-v1/* | awk '{print "source-built toolchain size: " $1}'
