//! A cross toolchain built from source, against the host's real Debian
//! mirror (network) and run with podman (root). Debian ships no cross
//! compiler for musl targets, so a C recipe for `aarch64-linux-musl` needs
//! binutils, GCC and musl built from Debian's verified sources:
//! - `plan` shows it as the expensive node, the build refuses to start it
//!   without `--allow-toolchain-build`, and `--max-builds` counts it —
//!   all before anything is downloaded;
//! - with the flag it is built once (tens of minutes on two cores), GNU
//!   hello is cross-built with it, linked statically, and runs under
//!   qemu-user in podman; a second build and a second project reuse it;
//! - a cargo project whose dependencies compile C through the `cc` crate
//!   (its own C and zlib's) gets its C compiled by that musl toolchain,
//!   not by a glibc one, and the static program runs.

mod support;

use std::path::Path;

use support::elf::{EM_AARCH64, read_elf};
use support::oci::Layout;
use support::podman::{Podman, assert_binfmt};
use support::xbuild::{Project, RunOutput, Xbuild, report_nodes as nodes, temp_dir};

const TARGET: &str = "aarch64-linux-musl";

fn hello_c() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-c")
}

/// `xbuild build PROJECT --out OUT --target aarch64-linux-musl EXTRA…`.
fn build_for_target(xbuild: &Xbuild, project: &Path, out: &Path, extra: &[&str]) -> RunOutput {
    let (project, out) = (project.to_str().unwrap(), out.to_str().unwrap());
    let mut arguments = vec!["build", project, "--out", out, "--target", TARGET];
    arguments.extend_from_slice(extra);
    xbuild.run(&arguments)
}

/// Every file under `dir`, recursively, with its size.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(files(&path));
        } else {
            found.push((path.display().to_string(), meta.len()));
        }
    }
    found
}

#[test]
fn network_root_plan_shows_the_source_toolchain_and_build_refuses_without_the_flag() {
    let xbuild = Xbuild::new().with_host_apt();
    let project = hello_c();

    let plan = xbuild.plan(&project, &[TARGET], true).success().json();
    let builds = plan["builds"].as_array().expect("builds");
    assert_eq!(builds.len(), 1, "{plan}");
    let build = &builds[0];
    assert_eq!(build["toolchain_provider"], "source", "{build}");
    assert_eq!(build["toolchain_cached"], false, "{build}");
    let estimate = build["toolchain_build_seconds"].as_f64().expect("estimate");
    assert!(estimate > 300.0, "a GCC build is not quick: {estimate}");
    let toolchain = build["toolchain"].as_str().unwrap();
    assert!(toolchain.contains("aarch64-linux-musl"), "{toolchain}");
    assert!(toolchain.contains("from source"), "{toolchain}");
    let cc = build["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|input| input[0] == "cc")
        .expect("a cc input")[1]
        .as_str()
        .unwrap()
        .to_owned();
    for part in [
        "binutils-source=",
        "gcc-12-source=",
        "linux-libc-dev=",
        "debian:musl=",
    ] {
        assert!(
            cc.contains(part),
            "the compiler identity names {part}: {cc}"
        );
    }
    let text = xbuild
        .plan(&project, &[TARGET], false)
        .success()
        .stdout
        .clone();
    assert!(text.contains("BUILD FROM SOURCE"), "{text}");
    assert!(text.contains("--allow-toolchain-build"), "{text}");

    // Without the flag: refused before anything is downloaded or built.
    let out = temp_dir("xbuild-toolchain-refused-");
    let refused = xbuild.build(&project, out.path(), &[TARGET]);
    refused.failure();
    assert_eq!(refused.status.code(), Some(2), "{refused}");
    assert!(
        refused.stderr.contains("--allow-toolchain-build"),
        "{refused}"
    );
    assert!(refused.stderr.contains("aarch64-linux-musl"), "{refused}");
    let cache = xbuild.cache_dir();
    assert!(!cache.join("toolchains-v1").exists(), "nothing was built");
    let big: Vec<(String, u64)> = files(&cache.join("blobs-v1"))
        .into_iter()
        .filter(|(_, size)| *size > 20_000_000)
        .collect();
    // The Packages and Sources indices are up to ~13 MB; binutils-source is
    // 24 MB and gcc-12-source 83 MB.
    assert!(big.is_empty(), "no toolchain input was downloaded: {big:?}");
    assert!(!out.path().join("oci").exists(), "no output was written");

    // --max-builds counts the toolchain: 2 builds (toolchain + hello) > 1.
    let limited = build_for_target(
        &xbuild,
        &project,
        out.path(),
        &["--allow-toolchain-build", "--max-builds", "1"],
    );
    let stderr = &limited.stderr;
    assert_eq!(limited.status.code(), Some(2), "{limited}");
    assert!(stderr.contains("2 builds would run"), "{stderr}");
    assert!(stderr.contains("(built from source)"), "{stderr}");
    assert!(!cache.join("toolchains-v1").exists(), "nothing was built");
}

#[test]
fn network_root_musl_toolchain_is_built_from_source_once_and_hello_runs() {
    assert_binfmt("aarch64");
    // Kept between local runs (the build takes tens of minutes); empty in CI.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("toolchain-build-cache");
    let fresh = !cache.join("toolchains-v1").exists();
    let xbuild = Xbuild::new().with_cache_dir(&cache).with_host_apt();
    let project = hello_c();
    let out = temp_dir("xbuild-toolchain-build-");
    let report = build_for_target(
        &xbuild,
        &project,
        out.path(),
        &["--allow-toolchain-build", "--json"],
    )
    .success()
    .json();
    let toolchains = nodes(&report, "toolchain");
    if fresh {
        // An empty cache (CI): the toolchain is built, then hello.
        assert_eq!(toolchains.len(), 1, "{toolchains:?}");
        assert_eq!(toolchains[0]["outcome"], "built", "{toolchains:?}");
        assert_eq!(nodes(&report, "build")[0]["outcome"], "built");
    }
    for toolchain in &toolchains {
        assert!(
            toolchain["name"].as_str().unwrap().contains("from source"),
            "{toolchain}"
        );
    }
    if let Some(toolchain) = toolchains.iter().find(|node| node["outcome"] == "built") {
        let seconds = toolchain["seconds"].as_f64().unwrap();
        eprintln!("toolchain built from source in {seconds:.0} s");
        assert!(seconds > 60.0, "{toolchain}");
        // Its inputs were fetched and verified like packages.
        let debs: Vec<String> = nodes(&report, "deb")
            .iter()
            .map(|node| node["name"].as_str().unwrap().to_owned())
            .collect();
        for wanted in [
            "binutils-source_",
            "gcc-12-source_",
            "libgmp-dev_",
            "linux-libc-dev_",
        ] {
            assert!(
                debs.iter().any(|name| name.starts_with(wanted)),
                "{wanted} in {debs:?}"
            );
        }
    }

    // GNU hello, statically linked for aarch64, runs.
    let layout = Layout::open(out.path());
    let (_, manifest) = layout.manifest_for("arm64");
    let hello = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|layer| layout.layer_entries(layer))
        .find(|entry| entry.path == "usr/local/bin/hello")
        .expect("usr/local/bin/hello in a layer");
    let elf = read_elf(&hello.contents);
    assert_eq!(elf.machine, EM_AARCH64);
    assert!(!elf.has_interpreter, "linked statically: {elf:?}");
    assert!(elf.needed.is_empty(), "{elf:?}");
    let podman = Podman::new();
    let name = podman.load(&out.path().join(format!("{TARGET}.tar")), "hello-c:latest");
    assert_eq!(podman.run(&name, "linux/arm64").trim(), "Hello, world!");

    // Again: the build is a hit, so the toolchain is not even opened.
    let again = xbuild
        .build(
            &project,
            temp_dir("xbuild-toolchain-again-").path(),
            &[TARGET],
        )
        .success()
        .json();
    for toolchain in nodes(&again, "toolchain") {
        assert_eq!(toolchain["outcome"], "local", "{toolchain}");
    }
    assert_eq!(nodes(&again, "build")[0]["outcome"], "local");
    // Cached now: no flag needed, and plan says so.
    let plan = xbuild.plan(&project, &[TARGET], true).success().json();
    assert_eq!(plan["builds"][0]["toolchain_cached"], true, "{plan}");

    // Another project (plain make, from a path) uses the same toolchain.
    // A source this cache has never built (a kept local cache included).
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let other = Project::new(
        r#"
[image]
name = "adder"
cmd = ["/usr/local/bin/adder"]
[[build]]
kind = "make"
path = "."
"#,
    );
    other.write(
        "adder.c",
        format!(
            "/* run {nonce} */\n#include <stdio.h>\n#include <stdlib.h>\nint main(int argc, char **argv) {{\n  long sum = 0;\n  for (int i = 1; i < argc; i++) sum += strtol(argv[i], 0, 10);\n  printf(\"sum %ld\\n\", sum);\n  return 0;\n}}\n"
        )
        .as_bytes(),
    );
    other.write(
        "Makefile",
        b"adder: adder.c\n\t$(CC) $(CFLAGS) $(LDFLAGS) -o $@ adder.c\ninstall: adder\n\tinstall -D adder $(DESTDIR)$(PREFIX)/bin/adder\n",
    );
    let other_out = temp_dir("xbuild-toolchain-other-");
    let report = xbuild
        .build(other.path(), other_out.path(), &[TARGET])
        .success()
        .json();
    // The toolchain is a hit that saves its whole build time.
    let toolchain = nodes(&report, "toolchain")[0];
    assert_eq!(toolchain["outcome"], "local", "{toolchain}");
    assert!(
        toolchain["saved_seconds"].as_f64().unwrap() > 60.0,
        "{toolchain}"
    );
    assert_eq!(nodes(&report, "build")[0]["outcome"], "built");
    let name = podman.load(
        &other_out.path().join(format!("{TARGET}.tar")),
        "adder:latest",
    );
    let sum = podman.run_with_args(&name, "linux/arm64", &["/usr/local/bin/adder", "40", "2"]);
    assert_eq!(sum.trim(), "sum 42");

    // A cargo project whose dependencies compile C: the cc crate gets the
    // musl compiler (Debian's glibc cross GCC would give glibc objects).
    let cargo_project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/projects/cc-zlib-musl");
    let plan = xbuild
        .plan(&cargo_project, &[TARGET], true)
        .success()
        .json();
    assert_eq!(plan["builds"][0]["toolchain_provider"], "source", "{plan}");
    let cargo_out = temp_dir("xbuild-toolchain-cargo-");
    let report = xbuild
        .build(&cargo_project, cargo_out.path(), &[TARGET])
        .success()
        .json();
    assert_eq!(nodes(&report, "toolchain")[0]["outcome"], "local");
    let layout = Layout::open(cargo_out.path());
    let (_, manifest) = layout.manifest_for("arm64");
    let program = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|layer| layout.layer_entries(layer))
        .find(|entry| entry.path == "usr/local/bin/cc-zlib")
        .expect("usr/local/bin/cc-zlib in a layer");
    let elf = read_elf(&program.contents);
    assert_eq!(elf.machine, EM_AARCH64);
    assert!(
        !elf.has_interpreter && elf.needed.is_empty(),
        "static: {elf:?}"
    );
    let name = podman.load(
        &cargo_out.path().join(format!("{TARGET}.tar")),
        "cc-zlib:latest",
    );
    let printed = podman.run(&name, "linux/arm64");
    for line in [
        "zlib round trip: ok",
        "C: 6 * 7 = 42",
        "C compiled for a little-endian target, Rust for a little-endian 64-bit one",
    ] {
        assert!(printed.contains(line), "{line:?} not in {printed:?}");
    }
}
