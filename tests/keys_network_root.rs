//! Keys that mean the same on every machine, against the host's real
//! Debian mirror (network), with foreign programs run through qemu-user
//! (root: binfmt_misc, podman).
//!
//! - One compiler on two build machines: s390x code compiled by amd64's
//!   `gcc-12-s390x-linux-gnu` and by arm64's (its programs run here under
//!   qemu) has one build key (`plan --build-platform`), though the
//!   toolchains' keys differ — and equal keys give equal bytes: the two
//!   compile one C file to the same object.
//! - Two compilers: arm64's native `gcc-12` (12.2.0-14+deb12u1, with the
//!   AArch64 stack-protector fix) is not amd64's cross build of 12.2.0-14,
//!   so an aarch64 build gets another key, and `--explain` names the
//!   revision.
//! - The standard library's identity: a target whose Rust standard
//!   library is not installed is planned without installing it, and the
//!   key the cold build records is the one every later plan computes; a
//!   rebuild that replaces the entry keeps the duration of the real build.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use support::archive::sha256_hex;
use support::files::copy_project;
use support::mirror::host_mirror;
use support::podman::{Podman, assert_binfmt};
use support::run_ok;
use support::xbuild::{Project, Xbuild, report_nodes, temp_dir};

fn shared_xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross-build-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

fn project(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `xbuild plan PROJECT --target T [--build-platform P] --json`.
fn plan(xbuild: &Xbuild, project: &Path, target: &str, build_platform: Option<&str>) -> Value {
    let mut arguments = vec![
        "plan".to_owned(),
        project.display().to_string(),
        "--target".to_owned(),
        target.to_owned(),
        "--json".to_owned(),
    ];
    if let Some(platform) = build_platform {
        arguments.extend(["--build-platform".to_owned(), platform.to_owned()]);
    }
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    xbuild.run(&arguments).success().json()
}

fn input<'a>(build: &'a Value, name: &str) -> &'a str {
    build["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
        .unwrap_or_else(|| panic!("no input {name} in {build}"))
}

/// Downloads `filename` from the host's mirror into `directory`, checking
/// it against `sha256` (`sha256:<hex>`), and returns its path.
fn download(filename: &str, sha256: &str, directory: &Path) -> PathBuf {
    let path = directory.join(filename.rsplit('/').next().unwrap());
    if !path.exists() {
        run_ok(
            Command::new("curl")
                .args(["-fsS", "-o"])
                .arg(&path)
                .arg(format!("{}/{filename}", host_mirror())),
        );
    }
    let bytes = fs::read(&path).unwrap();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&bytes)),
        sha256,
        "{filename} does not match the signed index"
    );
    path
}

/// Compiles `mix.c` (in `directory`) to `object` with the driver of the
/// compiler programs unpacked at `programs`, adding `environment`; the
/// programs' location is mapped out of debug information, as xbuild's
/// wrappers map it.
fn compile(
    programs: &Path,
    sysroot: &Path,
    directory: &Path,
    object: &str,
    environment: &[(&str, String)],
) -> Vec<u8> {
    let programs = fs::canonicalize(programs).unwrap();
    run_ok(
        Command::new(programs.join("usr/bin/s390x-linux-gnu-gcc-12"))
            .current_dir(directory)
            .envs(environment.iter().map(|(name, value)| (*name, value)))
            .arg(format!("--sysroot={}", sysroot.display()))
            .arg(format!(
                "-ffile-prefix-map={}/=/xbuild/toolchain/",
                programs.display()
            ))
            .args(["-O2", "-g", "-c", "mix.c", "-o", object]),
    );
    fs::read(directory.join(object)).unwrap()
}

const MIX_C: &str = r#"#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Enough C for the code generator to show: loops, calls, a table. */
static const uint32_t table[8] = {3, 1, 4, 1, 5, 9, 2, 6};

uint32_t mix(const char *text) {
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < strlen(text); i++) {
        hash = (hash ^ (uint8_t)text[i]) * 16777619u + table[i % 8];
    }
    return hash;
}

int report(const char *text) { return printf("%s -> %08x\n", text, mix(text)); }
"#;

#[test]
fn network_root_one_compiler_on_two_build_machines_gives_one_key_and_the_same_bytes() {
    let xbuild = shared_xbuild();
    let make = project("tests/projects/make-c");
    let here = plan(&xbuild, &make, "s390x-linux", None);
    let arm64 = plan(&xbuild, &make, "s390x-linux", Some("aarch64-linux"));
    let (here_build, arm64_build) = (&here["builds"][0], &arm64["builds"][0]);
    assert_eq!(arm64["build_platform"], "aarch64-linux");
    assert_eq!(
        here_build["key"], arm64_build["key"],
        "one compiler, two keys:\n{here_build}\n{arm64_build}"
    );
    assert_ne!(here_build["toolchain_key"], arm64_build["toolchain_key"]);
    assert_eq!(input(here_build, "cc"), input(arm64_build, "cc"));
    assert!(
        input(here_build, "cc").contains("gcc-12 12.2.0-14)"),
        "{}",
        input(here_build, "cc")
    );
    let architectures = |build: &Value| -> Vec<String> {
        build["toolchain_packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|package| package["architecture"].as_str().unwrap().to_owned())
            .filter(|architecture| architecture != "all")
            .collect()
    };
    assert!(architectures(here_build).iter().all(|arch| arch == "amd64"));
    assert!(
        architectures(arm64_build)
            .iter()
            .all(|arch| arch == "arm64")
    );

    // Equal keys, equal bytes. This machine's compiler programs and the
    // target's sysroot, as a build leaves them in the cache…
    xbuild
        .build(&make, temp_dir("xbuild-keys-out-").path(), &["s390x-linux"])
        .success();
    let cache = xbuild.cache_dir();
    let hex = |value: &Value| {
        value
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_owned()
    };
    let programs = cache
        .join("toolchains-v1")
        .join(hex(&here_build["toolchain_key"]));
    let sysroot = cache
        .join("sysroots-v3")
        .join(hex(&here_build["sysroot_key"]));
    assert!(
        programs.is_dir() && sysroot.is_dir(),
        "{programs:?} {sysroot:?}"
    );
    // …and arm64's programs, unpacked with the arm64 C library they run on.
    let work = temp_dir("xbuild-keys-");
    let debs = work.path().join("debs");
    let arm64_root = work.path().join("arm64");
    fs::create_dir_all(&debs).unwrap();
    let libc = Project::new("[image]\nname = \"libc\"\n[packages]\ninclude = [\"libc6\"]\n");
    let libc_plan = plan(&xbuild, libc.path(), "aarch64-linux", None);
    let mut packages: Vec<Value> = arm64_build["toolchain_packages"]
        .as_array()
        .unwrap()
        .clone();
    packages.extend(
        libc_plan["targets"][0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    for package in &packages {
        let deb = download(
            package["filename"].as_str().unwrap(),
            package["sha256"].as_str().unwrap(),
            &debs,
        );
        run_ok(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&arm64_root),
        );
    }
    fs::write(work.path().join("mix.c"), MIX_C).unwrap();
    let triple = "s390x-linux-gnu";
    let here_object = compile(
        &programs,
        &sysroot,
        work.path(),
        "here.o",
        &[(
            "LD_LIBRARY_PATH",
            format!(
                "{0}/usr/lib/x86_64-linux-gnu:{0}/lib/x86_64-linux-gnu",
                programs.display()
            ),
        )],
    );
    assert_binfmt("aarch64");
    let arm64_object = compile(
        &arm64_root,
        &sysroot,
        work.path(),
        "arm64.o",
        &[("QEMU_LD_PREFIX", arm64_root.display().to_string())],
    );
    assert_eq!(&here_object[..4], b"\x7fELF");
    assert_eq!(
        u16::from_be_bytes([here_object[18], here_object[19]]),
        22,
        "not an s390x object"
    );
    assert!(
        here_object == arm64_object,
        "amd64's and arm64's {triple}-gcc-12 compiled mix.c to different objects ({} and {} bytes)",
        here_object.len(),
        arm64_object.len()
    );
}

#[test]
fn network_root_a_native_compiler_of_another_revision_gets_another_key() {
    let xbuild = shared_xbuild();
    let make = project("tests/projects/make-c");
    // A cached build from this machine, so --explain has one to compare with.
    xbuild
        .build(
            &make,
            temp_dir("xbuild-keys-out-").path(),
            &["aarch64-linux"],
        )
        .success();
    let here = plan(&xbuild, &make, "aarch64-linux", None);
    let arm64 = plan(&xbuild, &make, "aarch64-linux", Some("aarch64-linux"));
    let (here_build, arm64_build) = (&here["builds"][0], &arm64["builds"][0]);
    assert_eq!(here_build["toolchain_provider"], "debian-cross");
    assert_eq!(arm64_build["toolchain_provider"], "debian-native");
    assert_ne!(here_build["key"], arm64_build["key"]);
    assert_eq!(here_build["cached"], true);
    assert_eq!(arm64_build["cached"], false);
    assert!(
        input(arm64_build, "cc").contains("gcc-12 12.2.0-14+deb12u1"),
        "{}",
        input(arm64_build, "cc")
    );
    let explained = xbuild
        .run(&[
            "plan",
            make.to_str().unwrap(),
            "--target",
            "aarch64-linux",
            "--build-platform",
            "aarch64-linux",
            "--explain",
        ])
        .success()
        .stdout
        .clone();
    let miss = explained
        .lines()
        .find(|line| line.trim_start().starts_with("miss: cc:"))
        .unwrap_or_else(|| panic!("no cc difference explained:\n{explained}"));
    assert!(miss.contains("12.2.0-14+deb12u1"), "{miss}");
    assert!(miss.contains("gcc-12-cross"), "{miss}");
}

#[test]
fn network_root_a_cold_build_records_the_key_every_later_plan_computes() {
    // No other test of this binary builds Rust: removing the target's
    // standard library here races with nothing.
    let (target, triple, platform) = (
        "ppc64le-linux",
        "powerpc64le-unknown-linux-gnu",
        "linux/ppc64le",
    );
    // Its own cache: what the cache records is under test.
    let xbuild = Xbuild::new().with_host_apt();
    // The standard library must not be installed yet.
    let _ = Command::new("rustup")
        .args(["target", "remove", triple])
        .output();
    let sysroot = run_ok(Command::new("rustc").args(["--print", "sysroot"]));
    let library = Path::new(sysroot.trim()).join("lib/rustlib").join(triple);
    assert!(
        !library.exists(),
        "{} is still installed",
        library.display()
    );

    let work = temp_dir("xbuild-armel-");
    let project = work.path().join("cc-zlib");
    copy_project(&project_source(), &project);
    let before = plan(&xbuild, &project, target, None);
    let planned = &before["builds"][0];
    assert!(
        input(planned, "rust-std").starts_with(&format!("rust-std {triple} sha256:")),
        "{planned}"
    );
    assert!(!library.exists(), "planning installed the standard library");

    let out = temp_dir("xbuild-armel-out-");
    let first = xbuild
        .build(&project, out.path(), &[target])
        .success()
        .json();
    let built = report_nodes(&first, "build");
    assert_eq!(built.len(), 1);
    assert_eq!(built[0]["outcome"], "built");
    let build_seconds = built[0]["seconds"].as_f64().unwrap();
    assert!(
        library.exists(),
        "the build did not install the standard library"
    );
    assert_binfmt("ppc64le");
    let podman = Podman::new();
    let image = podman.load(&out.path().join(format!("{target}.tar")), "cc-zlib:latest");
    let printed = podman.run(&image, platform);
    assert!(printed.contains("C: 6 * 7 = 42"), "{printed}");

    // Every input is what the cold plan computed — but for the variables
    // the build scripts turned out to read, which the cold build recorded
    // with its entry — and the plan is a hit.
    let after = plan(&xbuild, &project, target, None);
    let inputs = |build: &Value| -> Vec<(String, String)> {
        build["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().to_owned(),
                )
            })
            .filter(|(name, _)| name != "build-script-env")
            .collect()
    };
    assert_eq!(
        inputs(&after["builds"][0]),
        inputs(planned),
        "the inputs changed once installed"
    );
    assert_eq!(after["builds"][0]["cached"], true, "{}", after["builds"][0]);
    let again = xbuild
        .build(&project, out.path(), &[target])
        .success()
        .json();
    assert_eq!(again["summary"]["built"], 0, "{}", again["summary"]);
    let saved = again["summary"]["saved_seconds"].as_f64().unwrap();
    assert!(
        saved >= build_seconds * 0.99,
        "saves {saved} s of a {build_seconds} s build"
    );

    // The layer is lost: the rebuild finds cargo's work done and takes a
    // moment, but the entry keeps what the real build cost.
    let layer = first["targets"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|layer| layer["packages"][0].as_str().unwrap().starts_with("cargo "))
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    fs::remove_file(xbuild.cache_dir().join("blobs-v1/sha256").join(layer)).unwrap();
    let rebuilt = xbuild
        .build(&project, out.path(), &[target])
        .success()
        .json();
    let node = &report_nodes(&rebuilt, "build")[0];
    assert_eq!(node["outcome"], "built");
    let replanned = plan(&xbuild, &project, target, None);
    let estimate = replanned["builds"][0]["estimated_seconds"]
        .as_f64()
        .unwrap();
    assert!(
        estimate >= build_seconds * 0.99,
        "the rebuild ({} s) replaced the real build's {build_seconds} s: {estimate}",
        node["seconds"]
    );
}

fn project_source() -> PathBuf {
    project("tests/projects/cc-zlib")
}
