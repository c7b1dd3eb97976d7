#!/usr/bin/env bash
# Image sizes of cowsay, python3-minimal and curl for one target
# (aarch64-linux by default), four ways, in the same run:
#
#   default  xbuild, small by default (documentation, man pages and
#            locales left out)
#   docs     xbuild with `docs = true`
#   slim     xbuild with `slim = true` (the cmd traced and checked again)
#   debian   the full Debian closure of the same package:
#            `mmdebstrap --variant=extract` of it, the tree's bytes and
#            its tarball gzip'ed at level 6
#
# Sizes are uncompressed (the layers' tar bytes; the tree's for debian)
# and compressed (gzip). Build times are medians of RUNS warm builds of
# the slim image, to show what tracing costs once its layers are cached.
#
# usage: bench/sizes.sh        (RUNS=3 by default)
# env:   RUNS, TARGET (default aarch64-linux), SOURCES (default the
#        host's apt sources), CARGO_TARGET_DIR, XBUILD (a binary to use
#        instead of building one)
# Needs: mmdebstrap, perl, qemu-user-static (scripts/setup.sh); root.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
runs=${RUNS:-3}
target=${TARGET:-aarch64-linux}
sources=${SOURCES:-/etc/apt/sources.list.d/debian.sources}
if [ ! -e "$sources" ]; then
    sources=/etc/apt/sources.list
fi
for tool in mmdebstrap perl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/setup.sh)" >&2; exit 1; }
done
if [ -n "${XBUILD:-}" ]; then
    xbuild=$XBUILD
else
    cargo build --release --quiet
    xbuild="${CARGO_TARGET_DIR:-$repo/target}/release/xbuild"
fi
debian_arch=$("$xbuild" targets --json | perl -MJSON::PP -e '
    my $want = shift; local $/; my $all = decode_json(<STDIN>);
    for my $p (@$all) { print $p->{debian_arch} if $p->{name} eq $want }' "$target")

work=$(mktemp -d /tmp/xbuild-bench-sizes.XXXXXX)
trap 'rm -rf "$work"' EXIT
cache="$work/cache"

# name|package|cmd as TOML
images=(
    'cowsay|cowsay|["cowsay", "hello", "world"]'
    'python3-minimal|python3-minimal|["python3", "-c", "print(1)"]'
    'curl|curl|["curl", "--version"]'
)

# The layers' sizes of a build report: "uncompressed compressed".
sizes() {
    perl -MJSON::PP -e '
        local $/; my $t = decode_json(<STDIN>)->{targets}[0]; my ($u, $c) = (0, 0);
        for my $l (@{$t->{layers}}) { $u += $l->{uncompressed_size}; $c += $l->{size} }
        print "$u $c\n"' <"$1"
}

median() {
    sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

mb() {
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'
}

rows=()
for spec in "${images[@]}"; do
    IFS='|' read -r name package cmd <<<"$spec"
    line="| $name"
    for variant in default docs slim; do
        project="$work/$name-$variant"
        mkdir -p "$project"
        extra=""
        case $variant in
            docs) extra="docs = true" ;;
            slim) extra="slim = true" ;;
        esac
        printf '[image]\nname = "%s"\ncmd = %s\n%s\n\n[packages]\ninclude = ["%s"]\n' \
            "$name" "$cmd" "$extra" "$package" >"$project/xbuild.toml"
        "$xbuild" build "$project" --target "$target" --out "$project/out" \
            --cache-dir "$cache" -q --json >"$project/report.json"
        read -r uncompressed compressed < <(sizes "$project/report.json")
        line="$line | $(mb "$uncompressed") | $(mb "$compressed")"
        if [ "$variant" = slim ]; then
            warm=$(for _ in $(seq "$runs"); do
                start=$(date +%s.%N)
                "$xbuild" build "$project" --target "$target" --out "$project/out" \
                    --cache-dir "$cache" -q >/dev/null
                awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.2f\n", a - b }'
            done | median)
        fi
    done
    tree="$work/$name-debian"
    mmdebstrap --quiet --variant=extract --architectures="$debian_arch" \
        --include="$package" bookworm "$tree" "$sources"
    bytes=$(du -sb --apparent-size "$tree" | cut -f1)
    gzipped=$(tar -C "$tree" -cf - . | gzip -6 | wc -c)
    line="$line | $(mb "$bytes") | $(mb "$gzipped") | $warm |"
    rows+=("$line")
    rm -rf "$tree"
done

printf '\nimage sizes for %s, MB (10^6 bytes), uncompressed / gzip; slim warm build: median of %s runs; load %s\n\n' \
    "$target" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "| image | default | gz | docs = true | gz | slim | gz | Debian closure | gz | slim warm build (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
