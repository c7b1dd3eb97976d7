//! Cross-compiled `[[build]] kind = "cargo"` projects, end to end against
//! the host's real Debian mirror (whatever its apt configuration names) and
//! real podman: they need the network, and root for podman. Every test name
//! contains `network` and `root`, so `cargo test -- --skip network` leaves
//! them out.
//!
//! - `examples/hello-rust` (Rust plus C through the `cc` crate) for
//!   aarch64 and armv7 glibc, and `examples/hello-zlib`
//!   (links the target's own zlib from the sysroot) for aarch64 and armv7:
//!   each image runs under podman through qemu-user and prints what it must.
//! - The cache: a second build is all hits; a source change rebuilds only
//!   the build node and its layer; a change that does not reach the binary
//!   rebuilds the build node but nothing downstream (early cutoff); the
//!   cross toolchain is fetched and assembled once per cache.
//! - Reproducibility: two copies of `examples/hello-rust` at paths of
//!   different lengths, each built with its own empty cache, give the same
//!   binary, build layer and image manifest, byte for byte.
//!
//! The tests that do not need an empty cache share one under cargo's test
//! temp dir (toolchains, sysroots, Rust build dirs), so reruns start warm.
//! A missing podman or qemu registration is a failure, not a skip: CI
//! installs them (`.ci/run`).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use support::elf::{EM_AARCH64, EM_ARM, read_elf};
use support::files::copy_project;
use support::oci::Layout;
use support::podman::{Podman, assert_binfmt};
use support::reproducible::{bytes_difference, layout_differences, leaked};
use support::xbuild::{Xbuild, report_nodes as nodes, report_package_names, temp_dir};

/// What a test knows about one target platform.
struct Target {
    /// xbuild's name for it.
    name: &'static str,
    /// qemu-user's name (binfmt entry `qemu-<name>`).
    qemu: &'static str,
    /// OCI `architecture`.
    oci_architecture: &'static str,
    /// podman's `--platform`.
    podman_platform: &'static str,
    /// Rust's `std::env::consts::ARCH` there.
    rust_arch: &'static str,
    /// ELF `e_machine` of its binaries.
    elf_machine: u16,
    /// Statically linked (musl) rather than against glibc.
    musl: bool,
}

const AARCH64: Target = Target {
    name: "aarch64-linux",
    qemu: "aarch64",
    oci_architecture: "arm64",
    podman_platform: "linux/arm64",
    rust_arch: "aarch64",
    elf_machine: EM_AARCH64,
    musl: false,
};

const ARMV7: Target = Target {
    name: "armv7-linux",
    qemu: "arm",
    oci_architecture: "arm",
    podman_platform: "linux/arm/v7",
    rust_arch: "arm",
    elf_machine: EM_ARM,
    musl: false,
};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// One cache shared by the tests that do not need an empty one.
fn shared_xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross-build-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

/// `xbuild build PROJECT --target … --json`, which must succeed.
fn build(xbuild: &Xbuild, project: &Path, out: &Path, targets: &[&str]) -> Value {
    xbuild.build(project, out, targets).success().json()
}

/// The report's entry for `target`.
fn target_report<'a>(report: &'a Value, target: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets in {report}"))
        .iter()
        .find(|entry| entry["target"] == target)
        .unwrap_or_else(|| panic!("no target {target} in {}", report["targets"]))
}

/// The report's nodes of `kind`.
fn outcome(node: &Value) -> &str {
    node["outcome"].as_str().unwrap_or("?")
}

fn is_build_layer(layer: &Value) -> bool {
    layer["packages"][0]
        .as_str()
        .is_some_and(|label| label.starts_with("cargo "))
}

/// The one layer of a target made by a cargo build.
fn build_layer(target: &Value) -> &Value {
    let layers: Vec<&Value> = target["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {target}"))
        .iter()
        .filter(|layer| is_build_layer(layer))
        .collect();
    assert_eq!(layers.len(), 1, "build layers: {}", target["layers"]);
    layers[0]
}

/// (first package name, digest, outcome) of every package layer.
fn package_layers(target: &Value) -> Vec<(String, String, String)> {
    target["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|layer| !is_build_layer(layer))
        .map(|layer| {
            (
                layer["packages"][0].as_str().unwrap_or("?").to_owned(),
                layer["digest"].as_str().unwrap().to_owned(),
                outcome(layer).to_owned(),
            )
        })
        .collect()
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field} in {value}"))
}

/// The bytes of `usr/local/bin/<binary>` in `target`'s build layer, read
/// from the OCI layout under `out` (the reported manifest, which must be
/// there, for the target's architecture, and carry that layer).
fn built_binary(out: &Path, target: &Target, report_target: &Value, binary: &str) -> Vec<u8> {
    let layout = Layout::open(out);
    let manifest_digest = str_of(report_target, "manifest_digest");
    let descriptor = layout
        .manifest_descriptors()
        .into_iter()
        .find(|descriptor| descriptor["digest"] == manifest_digest)
        .unwrap_or_else(|| {
            panic!(
                "{}: manifest {manifest_digest} not in {}",
                target.name,
                layout.index()
            )
        });
    assert_eq!(
        descriptor["platform"]["architecture"], target.oci_architecture,
        "{}: {descriptor}",
        target.name
    );
    let manifest = layout.json_blob(manifest_digest);
    assert_eq!(
        layout.config(&manifest)["architecture"],
        target.oci_architecture
    );
    let digest = str_of(build_layer(report_target), "digest");
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|layer| layer["digest"] == digest)
        .unwrap_or_else(|| panic!("{}: build layer {digest} not in {manifest}", target.name));
    let path = format!("usr/local/bin/{binary}");
    let entry = layout
        .layer_entries(layer)
        .into_iter()
        .find(|entry| entry.path == path)
        .unwrap_or_else(|| panic!("{}: no {path} in the build layer", target.name));
    assert_eq!(entry.mode & 0o111, 0o111, "{path} is not executable");
    entry.contents
}

/// Loads `target`'s docker-archive from `out` into `podman` and runs it.
fn run_image(podman: &Podman, out: &Path, target: &Target, image: &str) -> String {
    assert_binfmt(target.qemu);
    let archive = out.join(format!("{}.tar", target.name));
    let loaded = podman.load(&archive, image);
    podman.run(&loaded, target.podman_platform)
}

#[test]
fn network_root_hello_rust_runs_on_aarch64_and_armv7() {
    // (Its C for a musl target needs a toolchain built from source:
    // tests/toolchain_build_network_root.rs.)
    let targets = [AARCH64, ARMV7];
    let out = temp_dir("xbuild-out-");
    let names: Vec<&str> = targets.iter().map(|target| target.name).collect();
    let report = build(&shared_xbuild(), &example("hello-rust"), out.path(), &names);
    let podman = Podman::new();
    for target in &targets {
        let entry = target_report(&report, target.name);
        let label = build_layer(entry)["packages"][0].as_str().unwrap();
        assert!(label.contains(target.name), "{label}");

        let output = run_image(&podman, out.path(), target, "hello-rust:latest");
        assert_eq!(
            output,
            format!("hello from {}\n2 + 3 = 5 (from C)\n", target.rust_arch),
            "{}: unexpected output",
            target.name
        );

        let elf = read_elf(&built_binary(out.path(), target, entry, "hello-rust"));
        assert_eq!(elf.machine, target.elf_machine, "{}: {elf:?}", target.name);
        let packages = report_package_names(&serde_json::json!({ "targets": [entry] }));
        if target.musl {
            assert!(
                !elf.has_interpreter && elf.needed.is_empty(),
                "{}: a musl binary must be static: {elf:?}",
                target.name
            );
            assert!(
                !packages.iter().any(|name| name == "libc6"),
                "{}: a static binary needs no glibc: {packages:?}",
                target.name
            );
        } else {
            assert!(
                elf.has_interpreter && elf.needed.iter().any(|lib| lib == "libc.so.6"),
                "{}: not linked against glibc: {elf:?}",
                target.name
            );
            assert!(
                packages.iter().any(|name| name == "libc6"),
                "{}: libc6 not added for a glibc binary: {packages:?}",
                target.name
            );
        }
    }
}

#[test]
fn network_root_hello_zlib_links_the_sysroot_zlib_on_aarch64_and_armv7() {
    let targets = [AARCH64, ARMV7];
    let out = temp_dir("xbuild-out-");
    let names: Vec<&str> = targets.iter().map(|target| target.name).collect();
    let report = build(&shared_xbuild(), &example("hello-zlib"), out.path(), &names);
    let podman = Podman::new();
    let mut not_dynamic = Vec::new();
    for target in &targets {
        let entry = target_report(&report, target.name);
        let packages = report_package_names(&serde_json::json!({ "targets": [entry] }));
        for wanted in ["zlib1g", "libc6"] {
            assert!(
                packages.iter().any(|name| name == wanted),
                "{}: {wanted} is not in the image: {packages:?}",
                target.name
            );
        }
        assert!(
            !packages.iter().any(|name| name == "zlib1g-dev"),
            "{}: the -dev package belongs in the sysroot, not the image: {packages:?}",
            target.name
        );
        let zlib_version = entry["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|package| package["name"] == "zlib1g")
            .map(|package| str_of(package, "version").to_owned())
            .unwrap();

        let output = run_image(&podman, out.path(), target, "hello-zlib:latest");
        let line = output.trim_end();
        let suffix = format!(" on {}: round trip ok", target.rust_arch);
        let version = line
            .strip_prefix("zlib ")
            .and_then(|rest| rest.strip_suffix(&suffix))
            .unwrap_or_else(|| panic!("{}: unexpected output {output:?}", target.name));
        // `1:1.2.13.dfsg-1` is upstream 1.2.13.
        let upstream = zlib_version
            .split_once(':')
            .map_or(&*zlib_version, |(_, v)| v);
        if !upstream.starts_with(version) {
            not_dynamic.push(format!(
                "{}: the program runs zlib {version}, the image has zlib1g {zlib_version}",
                target.name
            ));
        }

        let elf = read_elf(&built_binary(out.path(), target, entry, "hello-zlib"));
        assert_eq!(elf.machine, target.elf_machine, "{}: {elf:?}", target.name);
        if !elf.needed.iter().any(|lib| lib == "libz.so.1") {
            not_dynamic.push(format!("{}: DT_NEEDED {:?}", target.name, elf.needed));
        }
    }
    // Checked after every target ran, so a failure shows them all.
    assert!(
        not_dynamic.is_empty(),
        "hello-zlib does not use the target's zlib1g through libz.so.1 \
         (a static or bundled zlib instead): {not_dynamic:#?}"
    );
}

/// Every node of `report` is a local hit and nothing was downloaded or built.
fn assert_all_local(report: &Value, step: &str) {
    let misses: Vec<String> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| outcome(node) != "local")
        .map(|node| format!("{} {} {}", node["kind"], node["name"], node["outcome"]))
        .collect();
    assert!(misses.is_empty(), "{step}: not local: {misses:#?}");
    assert_eq!(
        report["summary"]["downloaded"], 0,
        "{step}: {}",
        report["summary"]
    );
    assert_eq!(
        report["summary"]["built"], 0,
        "{step}: {}",
        report["summary"]
    );
}

/// After a change to the project: the one build node is `built`, every node
/// other than the build and the image is a local hit, nothing was
/// downloaded, and the package layers are the previous ones.
fn assert_only_build_rebuilt(report: &Value, before: &Value, target: &str, step: &str) {
    let builds = nodes(report, "build");
    assert_eq!(builds.len(), 1, "{step}: build nodes {builds:?}");
    assert_eq!(outcome(builds[0]), "built", "{step}: {}", builds[0]);
    let toolchains = nodes(report, "toolchain");
    assert!(!toolchains.is_empty(), "{step}: no toolchain node");
    let others: Vec<String> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["kind"] != "build" && node["kind"] != "image")
        .filter(|node| outcome(node) != "local")
        .map(|node| format!("{} {} {}", node["kind"], node["name"], node["outcome"]))
        .collect();
    assert!(others.is_empty(), "{step}: not local: {others:#?}");
    assert_eq!(
        report["summary"]["downloaded"], 0,
        "{step}: {}",
        report["summary"]
    );
    let now = target_report(report, target);
    let then = target_report(before, target);
    let layers = package_layers(now);
    assert!(!layers.is_empty(), "{step}: no package layers");
    assert!(
        layers.iter().all(|(_, _, outcome)| outcome == "local"),
        "{step}: package layers {layers:?}"
    );
    let digests = |layers: Vec<(String, String, String)>| -> Vec<(String, String)> {
        layers
            .into_iter()
            .map(|(name, digest, _)| (name, digest))
            .collect()
    };
    assert_eq!(
        digests(layers),
        digests(package_layers(then)),
        "{step}: package layers changed"
    );
}

#[test]
fn network_root_cargo_build_cache_hits_rebuilds_one_node_and_cuts_off_early() {
    let target = AARCH64;
    let xbuild = shared_xbuild();
    // The copy lives at a fixed path, so its cargo target dir in the shared
    // cache is reused by every run; the edits below carry a nonce, so every
    // run's edits are new to the cache.
    let project = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hello-rust-copy");
    if project.exists() {
        fs::remove_dir_all(&project).unwrap();
    }
    copy_project(&example("hello-rust"), &project);
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let out = temp_dir("xbuild-out-");
    let build_it = || build(&xbuild, &project, out.path(), &[target.name]);
    let manifest =
        |report: &Value| str_of(target_report(report, target.name), "manifest_digest").to_owned();
    let build_digest = |report: &Value| {
        str_of(build_layer(target_report(report, target.name)), "digest").to_owned()
    };

    // Whatever this cache already had: afterwards it has all of it.
    let first = build_it();

    // 1. No change: every node is a hit, the same image.
    let second = build_it();
    assert_all_local(&second, "second build");
    assert_eq!(manifest(&second), manifest(&first));
    assert_eq!(
        outcome(build_layer(target_report(&second, target.name))),
        "local"
    );

    // 2. A source file changes: only the build node and its layer change.
    let main_rs = project.join("src/main.rs");
    let source = fs::read_to_string(&main_rs).unwrap();
    assert!(source.contains("\"hello from {}\""), "{source}");
    fs::write(
        &main_rs,
        source.replace(
            "\"hello from {}\"",
            &format!("\"hello again ({nonce}) from {{}}\""),
        ),
    )
    .unwrap();
    let changed = build_it();
    assert_only_build_rebuilt(&changed, &second, target.name, "after editing src/main.rs");
    assert_ne!(
        build_digest(&changed),
        build_digest(&second),
        "the build layer did not change"
    );
    assert_ne!(
        manifest(&changed),
        manifest(&second),
        "the image did not change"
    );
    let edited = format!("hello again ({nonce}) from ");
    let binary = built_binary(
        out.path(),
        &target,
        target_report(&changed, target.name),
        "hello-rust",
    );
    assert!(
        binary
            .windows(edited.len())
            .any(|window| window == edited.as_bytes()),
        "the new binary lacks the edited text"
    );

    // 3. A file that does not reach the binary: the build node's key covers
    // the whole source tree, so it runs again, but its output is the same
    // bytes, so the layer and the image are the previous ones.
    fs::write(
        project.join("README.md"),
        format!("# hello-rust, a copy ({nonce})\n"),
    )
    .unwrap();
    let readme = build_it();
    assert_only_build_rebuilt(&readme, &changed, target.name, "after adding README.md");
    assert_eq!(
        build_digest(&readme),
        build_digest(&changed),
        "no early cutoff: the build layer changed"
    );
    assert_eq!(
        manifest(&readme),
        manifest(&changed),
        "no early cutoff: the image changed"
    );
    let images = nodes(&readme, "image");
    assert!(
        images.iter().all(|node| outcome(node) == "local"),
        "identical layers must give the cached image: {images:?}"
    );
}

/// Names of the `deb` nodes of `report` fetched for a toolchain (the
/// compiler programs: packages of the build machine's architecture, and
/// Debian's `-cross` packages), with their outcomes.
fn toolchain_debs(report: &Value) -> Vec<(String, String)> {
    let output = std::process::Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .unwrap();
    let host = format!("_{}.deb", String::from_utf8_lossy(&output.stdout).trim());
    nodes(report, "deb")
        .into_iter()
        .filter(|node| {
            let name = str_of(node, "name");
            name.ends_with(&host) || name.contains("-cross_")
        })
        .map(|node| (str_of(node, "name").to_owned(), outcome(node).to_owned()))
        .collect()
}

#[test]
fn network_root_cross_toolchain_is_fetched_once_for_two_projects() {
    let target = AARCH64;
    // An empty cache: the first project must fetch and assemble the toolchain.
    let xbuild = Xbuild::new().with_host_apt();
    let first = build(
        &xbuild,
        &example("hello-rust"),
        temp_dir("xbuild-out-").path(),
        &[target.name],
    );
    // The cross gcc (rustup's target library is not the cache's: it may
    // be installed already).
    let toolchains: Vec<_> = nodes(&first, "toolchain")
        .into_iter()
        .filter(|node| str_of(node, "name").starts_with("gcc"))
        .collect();
    assert!(
        !toolchains.is_empty(),
        "no toolchain node: {}",
        first["nodes"]
    );
    assert!(
        toolchains.iter().all(|node| outcome(node) == "built"),
        "an empty cache must assemble the toolchain: {toolchains:?}"
    );
    let fetched = toolchain_debs(&first);
    assert!(
        fetched
            .iter()
            .any(|(name, _)| name.starts_with("gcc-12-aarch64-linux-gnu_")),
        "the cross gcc deb was not fetched: {fetched:?}"
    );
    assert!(
        fetched.iter().all(|(_, outcome)| outcome == "downloaded"),
        "{fetched:?}"
    );

    // A second, different project for the same target: the same toolchain.
    let second = build(
        &xbuild,
        &example("hello-zlib"),
        temp_dir("xbuild-out-").path(),
        &[target.name],
    );
    let toolchains = nodes(&second, "toolchain");
    assert!(
        !toolchains.is_empty(),
        "no toolchain node: {}",
        second["nodes"]
    );
    assert!(
        toolchains.iter().all(|node| outcome(node) == "local"),
        "the second project did not reuse the toolchain: {toolchains:?}"
    );
    let fetched_names: BTreeSet<&str> = fetched.iter().map(|(name, _)| name.as_str()).collect();
    let again: Vec<String> = nodes(&second, "deb")
        .into_iter()
        .filter(|node| outcome(node) == "downloaded")
        .map(|node| str_of(node, "name").to_owned())
        .filter(|name| fetched_names.contains(name.as_str()))
        .collect();
    assert!(
        again.is_empty(),
        "toolchain debs downloaded again: {again:?}"
    );
    let downloaded_for_toolchain: Vec<_> = toolchain_debs(&second)
        .into_iter()
        .filter(|(_, outcome)| outcome == "downloaded")
        .collect();
    assert!(
        downloaded_for_toolchain.is_empty(),
        "{downloaded_for_toolchain:?}"
    );
    let entries: Vec<_> = fs::read_dir(xbuild.cache_dir().join("toolchains-v1"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one toolchain per cache and pair: {entries:?}"
    );
}

/// One build of a copy of a project with its own empty cache and output
/// dir; the dirs live as long as this.
struct IsolatedBuild {
    _work: TempDir,
    project: PathBuf,
    xbuild: Xbuild,
    out: TempDir,
    report: Value,
}

impl IsolatedBuild {
    /// Copies `source` to `<a new temp dir>/<nesting>/<its name>` and builds
    /// it there for `target` with a fresh, empty cache.
    fn new(source: &Path, nesting: &str, target: &Target) -> IsolatedBuild {
        let work = temp_dir("xbuild-repro-");
        let project = work.path().join(nesting).join(source.file_name().unwrap());
        copy_project(source, &project);
        let xbuild = Xbuild::new().with_host_apt();
        let out = temp_dir("xbuild-repro-out-");
        let report = build(&xbuild, &project, out.path(), &[target.name]);
        IsolatedBuild {
            _work: work,
            project,
            xbuild,
            out,
            report,
        }
    }

    /// The paths that differ between builds: a leak of any of them into
    /// the image is a reproducibility bug.
    fn paths(&self) -> Vec<String> {
        [&self.project, self.xbuild.cache_dir(), self.out.path()]
            .iter()
            .map(|path| path.to_string_lossy().into_owned())
            .collect()
    }
}

/// (name, version) of every package in a target's image.
fn package_versions(target: &Value) -> Vec<(String, String)> {
    let mut packages: Vec<(String, String)> = target["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no packages in {target}"))
        .iter()
        .map(|package| {
            (
                str_of(package, "name").to_owned(),
                str_of(package, "version").to_owned(),
            )
        })
        .collect();
    packages.sort();
    packages
}

#[test]
fn network_root_cross_build_is_reproducible_across_caches_and_paths() {
    let target = AARCH64;
    let source = example("hello-rust");
    // Paths of different lengths, so that a leaked path also moves offsets.
    let first = IsolatedBuild::new(&source, "a", &target);
    let second = IsolatedBuild::new(&source, "a-longer-path/one/level/deeper", &target);
    assert_ne!(first.project, second.project);
    assert_ne!(first.xbuild.cache_dir(), second.xbuild.cache_dir());
    let first_target = target_report(&first.report, target.name);
    let second_target = target_report(&second.report, target.name);
    for (label, report) in [("first", &first.report), ("second", &second.report)] {
        let builds = nodes(report, "build");
        assert!(
            !builds.is_empty() && builds.iter().all(|node| outcome(node) == "built"),
            "{label}: an empty cache must build: {builds:?}"
        );
    }
    assert_eq!(
        package_versions(first_target),
        package_versions(second_target),
        "the mirror changed between the two builds; run the test again"
    );

    let suspects = [first.paths(), second.paths()].concat();
    let first_layout = Layout::open(first.out.path());
    let second_layout = Layout::open(second.out.path());
    let mut differences = Vec::new();

    // (c) The binary, read from each build's layer.
    let first_binary = built_binary(first.out.path(), &target, first_target, "hello-rust");
    let second_binary = built_binary(second.out.path(), &target, second_target, "hello-rust");
    if let Some(text) = bytes_difference(&first_binary, &second_binary) {
        let leaks = [&first_binary, &second_binary].map(|bytes| leaked(bytes, &suspects));
        differences.push(format!(
            "usr/local/bin/hello-rust: {text}\n      paths in it: {leaks:?}"
        ));
    }

    // (a) The image manifest each layout's index names for the target.
    let manifest_digest = |layout: &Layout, report_target: &Value| {
        let (descriptor, _) = layout.manifest_for(target.oci_architecture);
        let digest = str_of(&descriptor, "digest").to_owned();
        assert_eq!(
            digest,
            str_of(report_target, "manifest_digest"),
            "the report names another manifest than the layout's index"
        );
        digest
    };
    let first_manifest = manifest_digest(&first_layout, first_target);
    let second_manifest = manifest_digest(&second_layout, second_target);
    if first_manifest != second_manifest {
        differences.push(format!(
            "image manifest: {first_manifest} vs {second_manifest}"
        ));
    }

    // (b) The build layer: the manifest's layer the report calls the build's.
    let build_layer_of = |layout: &Layout, manifest_digest: &str, report_target: &Value| {
        let digest = str_of(build_layer(report_target), "digest");
        layout.json_blob(manifest_digest)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|layer| layer["digest"] == digest)
            .unwrap_or_else(|| panic!("build layer {digest} not in manifest {manifest_digest}"))
            .clone()
    };
    let first_layer = build_layer_of(&first_layout, &first_manifest, first_target);
    let second_layer = build_layer_of(&second_layout, &second_manifest, second_target);
    if first_layer["digest"] != second_layer["digest"] {
        differences.push(format!(
            "build layer: {} vs {}",
            first_layer["digest"], second_layer["digest"]
        ));
    }
    // Why: every part of the two images that differs, down to tar entries.
    if first_manifest != second_manifest {
        differences.extend(
            layout_differences(
                &first_layout,
                &first_manifest,
                &second_layout,
                &second_manifest,
                &suspects,
            )
            .into_iter()
            .map(|text| format!("  image: {text}")),
        );
    }
    assert!(
        differences.is_empty(),
        "two empty caches at two paths built different bytes for {} ({} vs {}):\n{}",
        target.name,
        first.project.display(),
        second.project.display(),
        differences.join("\n")
    );
}
