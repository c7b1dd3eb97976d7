//! End-to-end tests against the host's real Debian mirror (whatever its apt
//! configuration names): they need the network, and root for podman. Every
//! test name contains `network` and `root`, so `cargo test -- --skip
//! network` leaves them out.
//!
//! `examples/cowsay` is built for several targets; the foreign images run
//! under podman through qemu-user (binfmt), the others are checked with
//! skopeo. A missing podman, skopeo or qemu registration is a failure, not a
//! skip: CI installs them (`.ci/run`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use support::oci::{Layout, docker_archive_manifest};
use support::podman::Podman;
use support::run_ok;
use support::xbuild::{RunOutput, Xbuild, report_package_names, report_packages, temp_dir};

const IMAGE: &str = "cowsay-hello-world:latest";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cowsay")
}

/// One cache shared by the tests that do not need an empty one; it lives in
/// cargo's test temp dir, so reruns start warm.
fn shared_xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-mirror-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

fn build(xbuild: &Xbuild, out: &Path, target: &str) -> Value {
    let run: RunOutput = xbuild.build(&example(), out, &[target]);
    run.success().json()
}

/// Builds cowsay for `target`, loads the docker-archive into a private
/// podman store and runs it for `platform` (through qemu when foreign).
fn cowsay_runs_under_podman(target: &str, platform: &str, architecture: &str) {
    assert!(
        target == "x86_64-linux" || Path::new("/proc/sys/fs/binfmt_misc/status").exists(),
        "binfmt_misc is not mounted: run .ci/run (or mount it and register qemu)"
    );
    let out = temp_dir("xbuild-out-");
    let report = build(&shared_xbuild(), out.path(), target);
    assert_eq!(report["targets"][0]["target"], target);
    let layout = Layout::open(out.path());
    let (_, manifest) = layout.manifest_for(architecture);
    assert_eq!(layout.config(&manifest)["architecture"], architecture);

    let docker_archive = out.path().join(format!("{target}.tar"));
    assert_eq!(
        docker_archive_manifest(&docker_archive)[0]["RepoTags"],
        serde_json::json!([IMAGE])
    );
    let podman = Podman::new();
    let loaded_name = podman.load(&docker_archive, IMAGE);
    let output = podman.run(&loaded_name, platform);
    assert!(
        output.contains("hello world"),
        "{target}: no greeting in:\n{output}"
    );
    assert!(output.contains("(oo)"), "{target}: no cow in:\n{output}");
}

#[test]
fn network_root_cowsay_aarch64_runs_under_podman() {
    cowsay_runs_under_podman("aarch64-linux", "linux/arm64", "arm64");
}

#[test]
fn network_root_cowsay_armv7_runs_under_podman() {
    cowsay_runs_under_podman("armv7-linux", "linux/arm/v7", "arm");
}

#[test]
fn network_root_cowsay_s390x_runs_under_podman() {
    cowsay_runs_under_podman("s390x-linux", "linux/s390x", "s390x");
}

/// Builds cowsay for `target` and checks both outputs with skopeo.
fn cowsay_inspects_with_skopeo(target: &str, architecture: &str) {
    let out = temp_dir("xbuild-out-");
    build(&shared_xbuild(), out.path(), target);
    for reference in [
        format!(
            "docker-archive:{}",
            out.path().join(format!("{target}.tar")).display()
        ),
        format!("oci:{}:latest", out.path().join("oci").display()),
    ] {
        let inspected: Value = serde_json::from_str(&run_ok(
            Command::new("skopeo").args(["inspect", &reference]),
        ))
        .unwrap();
        assert_eq!(
            inspected["Architecture"], architecture,
            "{reference}: {inspected}"
        );
        assert_eq!(inspected["Os"], "linux", "{reference}: {inspected}");
    }
}

#[test]
fn network_root_cowsay_x86_64_inspects_with_skopeo() {
    cowsay_inspects_with_skopeo("x86_64-linux", "amd64");
}

#[test]
fn network_root_cowsay_ppc64le_inspects_with_skopeo() {
    cowsay_inspects_with_skopeo("ppc64le-linux", "ppc64le");
}

#[test]
fn network_root_cowsay_closure_leaves_install_time_dependencies_out() {
    let out = temp_dir("xbuild-out-");
    let report = build(&shared_xbuild(), out.path(), "aarch64-linux");
    let names = report_package_names(&report);
    for present in ["cowsay", "perl", "perl-base", "libc6"] {
        assert!(
            names.iter().any(|name| name == present),
            "{present} missing: {names:?}"
        );
    }
    // Only `Pre-Depends: dpkg` of the perl packages pulls these.
    for absent in ["dpkg", "tar", "libselinux1"] {
        assert!(
            !names.iter().any(|name| name == absent),
            "{absent} present: {names:?}"
        );
    }
}

#[test]
fn network_root_cowsay_builds_from_two_empty_caches_are_identical() {
    let first_out = temp_dir("xbuild-out-");
    let first = build(
        &Xbuild::new().with_host_apt(),
        first_out.path(),
        "aarch64-linux",
    );
    let second_out = temp_dir("xbuild-out-");
    let second = build(
        &Xbuild::new().with_host_apt(),
        second_out.path(),
        "aarch64-linux",
    );
    assert_eq!(
        first["targets"][0]["manifest_digest"],
        second["targets"][0]["manifest_digest"]
    );
    assert_eq!(
        Layout::open(first_out.path()).index_bytes(),
        Layout::open(second_out.path()).index_bytes()
    );
}

#[test]
fn network_root_cowsay_warm_rebuild_is_all_local() {
    let xbuild = shared_xbuild();
    let first_out = temp_dir("xbuild-out-");
    let first = build(&xbuild, first_out.path(), "aarch64-linux");
    let second_out = temp_dir("xbuild-out-");
    let second = build(&xbuild, second_out.path(), "aarch64-linux");
    let packages = report_packages(&second);
    assert!(!packages.is_empty());
    assert!(
        packages.iter().all(|(_, _, outcome)| outcome == "local"),
        "{packages:?}"
    );
    for layer in second["targets"][0]["layers"].as_array().unwrap() {
        assert_eq!(layer["outcome"], "local", "{layer}");
    }
    assert_eq!(second["summary"]["downloaded"], 0, "{}", second["summary"]);
    assert_eq!(
        first["targets"][0]["manifest_digest"],
        second["targets"][0]["manifest_digest"]
    );
}
