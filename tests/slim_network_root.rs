//! `[image] slim = true` against the host's real Debian mirror:
//! `examples/cowsay` for aarch64, traced under qemu-user here, cut down
//! to what its command used, checked by running it again, and run with
//! podman. A probe whose output depends on a directory listing — which
//! tracing sees as one open of the directory, not of its entries — must
//! fail the build until the directory is in `[image] keep`. They need the
//! network, root (podman) and the host's qemu-user binfmt registration.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::podman::{Podman, assert_binfmt};
use support::xbuild::{Project, Xbuild, temp_dir};

const IMAGE: &str = "cowsay-hello-world:latest";
const LIMIT: u64 = 15 * 1000 * 1000;

/// One cache for these tests, in cargo's test temp dir (reruns are warm).
fn xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slim-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

/// A copy of examples/cowsay's manifest with `extra` added to `[image]`.
fn cowsay(extra: &str) -> Project {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cowsay/xbuild.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let text = text.replacen(
        "\n[packages]\n",
        &format!("slim = true\n{extra}\n\n[packages]\n"),
        1,
    );
    Project::new(&text)
}

fn target_report(report: &Value) -> &Value {
    &report["targets"][0]
}

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn network_root_slim_cowsay_is_small_and_prints_the_cow() {
    assert_binfmt("aarch64");
    let project = cowsay("");
    let out = temp_dir("xbuild-slim-out-");
    // A cache of its own: the trace really runs (a warm cache keeps the
    // checked slim image and traces nothing).
    let xbuild = Xbuild::new().with_host_apt();
    let build = xbuild.build(project.path(), out.path(), &["aarch64-linux"]);
    build.success();
    let report = build.json();
    let target = target_report(&report);
    let warm = xbuild.build(project.path(), out.path(), &["aarch64-linux"]);
    warm.success();
    let warm = warm.json();
    assert_eq!(
        target_report(&warm)["manifest_digest"],
        target["manifest_digest"]
    );
    assert!(
        target_report(&warm)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|layer| layer["outcome"] == "local"),
        "{warm}"
    );
    let slim = &target["slim"];
    let layers: u64 = target["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| number(&layer["uncompressed_size"]))
        .sum();
    assert_eq!(layers, number(&slim["uncompressed_size"]), "{slim}");
    assert!(
        layers < LIMIT,
        "the slim cowsay image is {layers} bytes uncompressed, not under {LIMIT}: {slim}"
    );
    let full = number(&slim["full_uncompressed_size"]);
    assert!(full > 4 * layers, "full {full}, slim {layers}");
    eprintln!("slim {layers} bytes, full {full} bytes uncompressed");

    // Measured independently: the image unpacked by umoci.
    let bundle = temp_dir("xbuild-slim-bundle-");
    let unpacked = bundle.path().join("bundle");
    let status = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:latest", out.path().join("oci").display()))
        .arg(&unpacked)
        .status()
        .expect("umoci");
    assert!(status.success());
    let rootfs = unpacked.join("rootfs");
    let on_disk = tree_bytes(&rootfs);
    assert!(on_disk < LIMIT, "{on_disk} bytes of files unpacked");
    // What tracing cannot see is there: the dynamic loader, perl's libc,
    // the dpkg records; documentation and the other cows are not.
    for kept in [
        "lib/ld-linux-aarch64.so.1",
        "usr/bin/perl",
        "usr/games/cowsay",
        "usr/share/cowsay/cows/default.cow",
        "var/lib/dpkg/status.d/cowsay",
    ] {
        assert!(
            rootfs.join(kept).symlink_metadata().is_ok(),
            "{kept} is missing"
        );
    }
    assert!(!rootfs.join("usr/share/cowsay/cows/tux.cow").exists());

    // The slim image prints the cow with podman too.
    let podman = Podman::new();
    let name = podman.load(&out.path().join("aarch64-linux.tar"), IMAGE);
    let stdout = podman.run(&name, "linux/arm64");
    assert!(stdout.contains("(oo)"), "no cow:\n{stdout}");
    assert!(stdout.contains("< hello world >"), "{stdout}");
}

/// Bytes of the regular files under `root`.
fn tree_bytes(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata().unwrap().len();
            }
        }
    }
    total
}

#[test]
fn network_root_slim_probe_that_lists_a_directory_fails_until_kept() {
    assert_binfmt("aarch64");
    // perl's readdir: the directory is opened (traced), its entries are
    // not, so only the cow cowsay used survives.
    let probe = r#"slim-probes = [["perl", "-e", 'opendir my $d, "/usr/share/cowsay/cows" or die; print scalar(grep { /\.cow$/ } readdir $d), "\n"']]"#;
    let project = cowsay(probe);
    let out = temp_dir("xbuild-slim-out-");
    let failed = xbuild().build(project.path(), out.path(), &["aarch64-linux"]);
    failed.failure();
    assert!(
        failed
            .stderr
            .contains("slim-probes[0] `perl -e opendir my $d, \"/usr/share/cowsay/cows\""),
        "{failed}"
    );
    assert!(
        failed
            .stderr
            .contains("behaves differently on the slim image"),
        "{failed}"
    );
    assert!(failed.stderr.contains("stdout differs"), "{failed}");
    assert!(failed.stderr.contains("[image] keep"), "{failed}");
    // Nothing was written for the failed build.
    assert!(!out.path().join("aarch64-linux.tar").exists());

    let kept = cowsay(&format!("{probe}\nkeep = [\"/usr/share/cowsay/cows\"]"));
    let build = xbuild().build(kept.path(), out.path(), &["aarch64-linux"]);
    build.success();
    let report = build.json();
    let probes: BTreeSet<&str> = target_report(&report)["slim"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|probe| probe.as_str().unwrap())
        .collect();
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert!(out.path().join("aarch64-linux.tar").is_file());
}

#[test]
fn network_root_slim_elf_closure_of_arm64_perl() {
    assert_binfmt("aarch64");
    // The full image's root filesystem, as xbuild run applies it
    // (rootfs-v1/<key>/root): perl there is the arm64 binary of Debian's
    // perl-base.
    let project = cowsay("");
    let out = temp_dir("xbuild-slim-out-");
    xbuild()
        .build(project.path(), out.path(), &["aarch64-linux"])
        .success();
    let root = xbuild().cache_dir().join("rootfs-v1");
    let root = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path().join("root"))
        .find(|path| path.join("usr/bin/perl").is_file())
        .expect("a root filesystem with perl");
    let perl = std::fs::read(root.join("usr/bin/perl")).unwrap();
    let dynamic = xbuild::slim::elf::read(&perl).expect("perl is an ELF file");
    assert_eq!(
        dynamic.interpreter.as_deref(),
        Some("/lib/ld-linux-aarch64.so.1")
    );
    assert!(
        dynamic.needed.iter().any(|name| name == "libc.so.6"),
        "{dynamic:?}"
    );
    let tree = xbuild::slim::closure::Root::new(&root, "aarch64-linux-gnu");
    let seeds = xbuild::slim::closure::Seeds {
        executed: ["/usr/bin/perl".to_owned()].into(),
        ..Default::default()
    };
    let kept = tree.closure(&seeds);
    for path in [
        "/usr/bin/perl",
        "/lib/ld-linux-aarch64.so.1",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libm.so.6",
    ] {
        assert!(
            kept.iter()
                .any(|kept| kept == path || kept.ends_with(path.rsplit('/').next().unwrap())),
            "{path} not in {kept:?}"
        );
    }
}
