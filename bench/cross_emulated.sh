#!/usr/bin/env bash
# examples/hello-rust (Rust plus C through the `cc` crate) for arm64:
# xbuild's cross build against an emulated build of the same project — the
# target's own cargo, rustc and gcc running under qemu-user in an arm64
# Debian root, which is what `docker buildx build --platform linux/arm64`
# does on this host — measured in the same run.
#
# - xbuild cold: an empty cache (indices, the cross gcc from Debian's cross
#   packages, compile, layers, image); rustup's target library may already
#   be installed. xbuild warm: the same build again, no change.
# - xbuild, new sources: a cache that already holds the toolchain, a source
#   tree it has never built (a nonce appended to src/main.rs): compile,
#   layer and image only. This is the fair peer of "emulated cold", whose
#   toolchain is installed before the clock starts.
# - emulated cold: `cargo build --release` from an empty target dir in the
#   arm64 root (gcc, libc6-dev from Debian; the arm64 Rust toolchain of the
#   host's rustc version from rustup), crates vendored beforehand, so the
#   timed part is compiling only. Emulated warm: the same again, no change.
#   Making the root (mmdebstrap) and installing Rust are not timed.
#
# usage: bench/cross_emulated.sh
# env:   RUNS (default 3), SOURCES (default the host's debian.sources),
#        EMU_TIMEOUT (seconds per emulated build, default 900; qemu-user
#        7.2 sometimes deadlocks a forking multi-threaded process such as
#        cargo: a run that hangs is killed, counted and repeated),
#        EMU_ROOT (an arm64 root prepared by an earlier run: used as is and
#        not deleted), KEEP_WORK=1 (keep the work dir).
# Needs: root, mmdebstrap, qemu-user-static registered with binfmt_misc,
# rustup, unshare, perl. Everything it makes lives in a temp dir that is
# removed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
runs=${RUNS:-3}
emu_timeout=${EMU_TIMEOUT:-900}
sources=${SOURCES:-/etc/apt/sources.list.d/debian.sources}
[ -e "$sources" ] || sources=/etc/apt/sources.list
for tool in mmdebstrap rustup unshare perl chroot timeout; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || {
    echo "error: qemu-aarch64 is not registered with binfmt_misc (scripts/setup.sh)" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || { echo "error: run as root (mmdebstrap, chroot)" >&2; exit 1; }

cargo build --release --quiet
xbuild="${CARGO_TARGET_DIR:-$repo/target}/release/xbuild"
project=$repo/examples/hello-rust
# xbuild compiles against the host's cargo registry: fetch the crates first.
cargo fetch --quiet --locked --manifest-path "$project/Cargo.toml"

work=$(mktemp -d /tmp/xbuild-bench-emu.XXXXXX)
cleanup() {
    if [ "${KEEP_WORK:-}" = 1 ]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { perl -e 'printf "%.2f", $ARGV[1] - $ARGV[0]' "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -g | perl -e '@v = <STDIN>; chomp @v; printf "%.2f", @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2'; }
ratio() { perl -e 'printf "%.1f", $ARGV[0] / $ARGV[1]' "$1" "$2"; }

# --- xbuild -----------------------------------------------------------------

xb() { # CACHE OUT PROJECT
    "$xbuild" build "$3" --target aarch64-linux --out "$2" --cache-dir "$1" -q >"$work/xb.log" 2>&1 || {
        cat "$work/xb.log" >&2
        echo "error: xbuild failed" >&2
        exit 1
    }
}

xb_cold=() xb_warm=() xb_new=()
for run in $(seq "$runs"); do
    cache=$work/xb-cache-$run
    start=$(now); xb "$cache" "$work/xb-out" "$project"; end=$(now)
    xb_cold+=("$(elapsed "$start" "$end")")
    start=$(now); xb "$cache" "$work/xb-out" "$project"; end=$(now)
    xb_warm+=("$(elapsed "$start" "$end")")
    # The same cache, sources it has never seen (new path, new content).
    copy=$work/hello-rust-copy-$run
    mkdir -p "$copy"
    cp -a "$project/Cargo.toml" "$project/Cargo.lock" "$project/build.rs" \
        "$project/xbuild.toml" "$project/src" "$project/csrc" "$copy/"
    echo "// $run $(now)" >>"$copy/src/main.rs"
    start=$(now); xb "$cache" "$work/xb-out-new" "$copy"; end=$(now)
    xb_new+=("$(elapsed "$start" "$end")")
    rm -rf "$cache" "$copy"
    echo "xbuild run $run: cold ${xb_cold[-1]} s, warm ${xb_warm[-1]} s, new sources ${xb_new[-1]} s" >&2
done

# --- the emulated build -------------------------------------------------------

if [ -n "${EMU_ROOT:-}" ]; then
    root=$EMU_ROOT
else
    root=$work/arm64-root
    echo "making an arm64 Debian root with gcc (mmdebstrap, under qemu; minutes)..." >&2
    mmdebstrap --quiet --architectures=arm64 --variant=apt \
        --include=gcc,libc6-dev,ca-certificates bookworm "$root" "$sources"
fi

# The arm64 Rust toolchain of the host's rustc version (Debian bookworm's
# rustc is too old for edition 2024), installed by rustup into the work dir
# and copied into the root.
rust_version=$(rustc --version | awk '{print $2}')
case $rust_version in *-*) rust_version=stable ;; esac
toolchain=$rust_version-aarch64-unknown-linux-gnu
if [ ! -x "$root/opt/rust/bin/cargo" ]; then
    echo "installing Rust $toolchain for the arm64 root..." >&2
    RUSTUP_HOME=$work/rustup CARGO_HOME=$work/cargo-home \
        rustup toolchain install "$toolchain" --force-non-host --profile minimal \
        --no-self-update >"$work/rustup.log" 2>&1 || { cat "$work/rustup.log" >&2; exit 1; }
    rm -rf "$root/opt/rust"
    cp -a "$work/rustup/toolchains/$toolchain" "$root/opt/rust"
fi

# The project, with its crates vendored: no network, no index in the timing.
emu_project=$root/work/hello-rust
rm -rf "$emu_project"
mkdir -p "$emu_project/.cargo"
cp -a "$project/Cargo.toml" "$project/Cargo.lock" "$project/build.rs" \
    "$project/src" "$project/csrc" "$emu_project/"
(cd "$emu_project" && cargo vendor --locked --quiet vendor >/dev/null)
cat >"$emu_project/.cargo/config.toml" <<'EOF'
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
EOF

in_root() { # COMMAND... (in /work/hello-rust of the arm64 root)
    unshare --mount --pid --fork --kill-child=SIGKILL \
        bash "$repo/bench/chroot_run.sh" "$root" "$@"
}

emu_hangs=0
emu_seconds=
# Times one emulated cargo build (cold: from an empty target dir) into
# emu_seconds; a run that exceeds EMU_TIMEOUT is killed with its whole PID
# namespace, counted and repeated.
emu_build() { # cold|warm
    local attempt start end status
    for attempt in 1 2 3; do
        if [ "$1" = cold ]; then rm -rf "$emu_project/target"; fi
        start=$(now)
        status=0
        timeout -s KILL "$emu_timeout" \
            unshare --mount --pid --fork --kill-child=SIGKILL \
            bash "$repo/bench/chroot_run.sh" "$root" \
            cargo build --release --offline --locked >"$work/emu.log" 2>&1 || status=$?
        end=$(now)
        if [ "$status" = 0 ]; then
            emu_seconds=$(elapsed "$start" "$end")
            return 0
        fi
        if [ "$status" -ne 124 ] && [ "$status" -ne 137 ]; then
            cat "$work/emu.log" >&2
            echo "error: the emulated build failed ($status)" >&2
            exit 1
        fi
        emu_hangs=$((emu_hangs + 1))
        echo "emulated $1 build hung (attempt $attempt, killed after ${emu_timeout}s)" >&2
    done
    echo "error: the emulated build hung three times" >&2
    exit 1
}

emu_cold=() emu_warm=()
for run in $(seq "$runs"); do
    emu_build cold
    emu_cold+=("$emu_seconds")
    emu_build warm
    emu_warm+=("$emu_seconds")
    echo "emulated run $run: cold ${emu_cold[-1]} s, warm ${emu_warm[-1]} s" >&2
done
# Both must have built a working program.
output=$(in_root ./target/release/hello-rust)
[ "$output" = "$(printf 'hello from aarch64\n2 + 3 = 5 (from C)')" ] || {
    echo "error: the emulated build printed: $output" >&2
    exit 1
}

xc=$(median "${xb_cold[@]}") xw=$(median "${xb_warm[@]}") xn=$(median "${xb_new[@]}")
ec=$(median "${emu_cold[@]}") ew=$(median "${emu_warm[@]}")
cat <<TABLE

examples/hello-rust for aarch64-linux on $(nproc) cores, median of $runs runs
(emulated: rustc $rust_version, gcc from Debian bookworm arm64, qemu-user $(qemu-aarch64-static --version | head -n 1 | awk '{print $3}'); hung runs repeated: $emu_hangs)

| tool | cold (s) | warm, no change (s) | emulated ÷ tool, cold | emulated ÷ tool, warm |
|---|---:|---:|---:|---:|
| xbuild, empty cache | $xc | $xw | $(ratio "$ec" "$xc") | $(ratio "$ew" "$xw") |
| xbuild, toolchain cached, new sources | $xn | $xw | $(ratio "$ec" "$xn") | $(ratio "$ew" "$xw") |
| emulated (cargo + gcc under qemu-user) | $ec | $ew | 1.0 | 1.0 |
TABLE
