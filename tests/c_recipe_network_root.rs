//! C recipes end to end, against the host's real Debian mirror (network)
//! and run with podman (root): GNU hello from Debian's signed source
//! package, cross-built with autotools for aarch64 and big-endian s390x;
//! a make project from a tarball URL that must match its sha256; and a
//! cmake project from a local path. Every image runs through qemu-user.
//! And reproducibility: the make project at two paths, each built with its
//! own empty cache, gives the same image manifest.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use support::oci::Layout;
use support::podman::{Podman, assert_binfmt};
use support::reproducible::layout_differences;
use support::run_ok;
use support::server::Server;
use support::xbuild::{Project, Xbuild, report_nodes as nodes, report_packages, temp_dir};

/// The cache the cross-build tests share: toolchains are fetched and
/// assembled once for all of them.
fn shared_xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross-build-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

fn run_image(out: &Path, target: &str, image: &str, platform: &str, qemu: &str) -> String {
    assert_binfmt(qemu);
    let podman = Podman::new();
    let name = podman.load(&out.join(format!("{target}.tar")), image);
    podman.run(&name, platform)
}

#[test]
fn debian_hello_is_cross_built_from_its_source_package_and_runs_network_root() {
    let xbuild = shared_xbuild();
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-c");
    let out = temp_dir("xbuild-hello-c-");
    let report = xbuild
        .build(&project, out.path(), &["aarch64-linux", "s390x-linux"])
        .success()
        .json();
    for (target, platform, qemu) in [
        ("aarch64-linux", "linux/arm64", "aarch64"),
        ("s390x-linux", "linux/s390x", "s390x"),
    ] {
        let output = run_image(out.path(), target, "hello-c:latest", platform, qemu);
        assert_eq!(output.trim(), "Hello, world!", "{target}");
    }
    let builds = nodes(&report, "build");
    assert_eq!(builds.len(), 2, "{builds:?}");
    for build in &builds {
        let name = build["name"].as_str().unwrap();
        assert!(name.starts_with("autotools debian:hello="), "{name}");
    }
    // glibc is in the image for the dynamically linked program.
    for target in report["targets"].as_array().unwrap() {
        let packages: Vec<&str> = target["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|package| package["name"].as_str().unwrap())
            .collect();
        assert!(packages.contains(&"libc6"), "{packages:?}");
    }

    // Unchanged: nothing is fetched or built again, and plan says so.
    let again = xbuild
        .build(&project, out.path(), &["aarch64-linux", "s390x-linux"])
        .success()
        .json();
    assert_eq!(again["summary"]["built"], 0, "{}", again["summary"]);
    assert_eq!(again["summary"]["downloaded"], 0, "{}", again["summary"]);
    assert!(again["summary"]["saved_seconds"].as_f64().unwrap() > 0.0);
    let plan = xbuild
        .run(&[
            "plan",
            project.to_str().unwrap(),
            "--target",
            "aarch64-linux",
            "--explain",
        ])
        .success()
        .stdout
        .clone();
    assert!(plan.contains("autotools debian:hello="), "{plan}");
    assert!(plan.contains(": cached"), "{plan}");
    assert!(
        plan.contains("toolchain gcc x86_64-linux → aarch64-linux: cached"),
        "{plan}"
    );
}

/// A tiny make project whose Makefile honours CC, PREFIX and DESTDIR.
fn make_project(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("greet.c"),
        "#include <stdio.h>\n#include <endian.h>\nint main(void) { printf(\"greetings from a %s-endian make build\\n\", __BYTE_ORDER == __BIG_ENDIAN ? \"big\" : \"little\"); return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Makefile"),
        "PREFIX ?= /usr/local\nCC ?= cc\ngreet: greet.c\n\t$(CC) -O2 -o $@ $<\ninstall: greet\n\tinstall -D -m 755 greet $(DESTDIR)$(PREFIX)/bin/greet\n",
    )
    .unwrap();
}

fn sha256_of(path: &Path) -> String {
    let output = run_ok(Command::new("sha256sum").arg(path));
    output.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn tarball_url_source_must_match_its_sha256_network_root() {
    let work = temp_dir("xbuild-make-url-");
    let source = work.path().join("greet-1.0");
    make_project(&source);
    let served = work.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let tarball = served.join("greet-1.0.tar.gz");
    run_ok(
        Command::new("tar")
            .arg("-czf")
            .arg(&tarball)
            .arg("-C")
            .arg(work.path())
            .arg("greet-1.0"),
    );
    let server = Server::serve(&served);
    let url = server.url("greet-1.0.tar.gz");
    let manifest = |sha256: &str| {
        format!(
            "[image]\nname = \"greet\"\ncmd = [\"/usr/local/bin/greet\"]\n[packages]\ninclude = []\n[[build]]\nkind = \"make\"\nsource = {{ url = \"{url}\", sha256 = \"{sha256}\" }}\n"
        )
    };
    let xbuild = shared_xbuild();

    // A wrong digest: refused, naming the URL and both digests.
    let wrong = "0".repeat(64);
    let project = Project::new(&manifest(&wrong));
    let out = temp_dir("xbuild-make-out-");
    let failure = xbuild.build(project.path(), out.path(), &["s390x-linux"]);
    let stderr = &failure.failure().stderr;
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains(&wrong), "{stderr}");
    assert!(stderr.contains(&sha256_of(&tarball)), "{stderr}");
    assert!(!out.path().join("s390x-linux.tar").exists());

    // The right digest: built for big-endian s390x and run.
    let project = Project::new(&manifest(&sha256_of(&tarball)));
    let report = xbuild
        .build(project.path(), out.path(), &["s390x-linux"])
        .success()
        .json();
    assert_eq!(nodes(&report, "build").len(), 1);
    let output = run_image(
        out.path(),
        "s390x-linux",
        "greet:latest",
        "linux/s390x",
        "s390x",
    );
    assert_eq!(output.trim(), "greetings from a big-endian make build");
}

#[test]
fn cmake_project_from_a_local_path_network_root() {
    let work = temp_dir("xbuild-cmake-");
    let source: PathBuf = work.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(
        source.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.13)\nproject(square C)\nadd_executable(square square.c)\ninstall(TARGETS square DESTINATION bin)\n",
    )
    .unwrap();
    std::fs::write(
        source.join("square.c"),
        "#include <stdio.h>\nint main(void) { printf(\"%d squared is %d (cmake, %zu-bit)\\n\", 7, 7 * 7, sizeof(void *) * 8); return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        work.path().join("xbuild.toml"),
        "[image]\nname = \"square\"\ncmd = [\"/usr/local/bin/square\"]\n[packages]\ninclude = []\n[[build]]\nkind = \"cmake\"\nsource = { path = \"src\" }\n",
    )
    .unwrap();
    let out = temp_dir("xbuild-cmake-out-");
    shared_xbuild()
        .build(work.path(), out.path(), &["armv7-linux"])
        .success();
    let output = run_image(
        out.path(),
        "armv7-linux",
        "square:latest",
        "linux/arm/v7",
        "arm",
    );
    assert_eq!(output.trim(), "7 squared is 49 (cmake, 32-bit)");
}

/// The image manifest digest that `out`'s OCI index names for
/// `architecture`, checked against the report's.
fn layout_manifest_digest(out: &Path, architecture: &str, report: &Value) -> String {
    let (descriptor, _) = Layout::open(out).manifest_for(architecture);
    let digest = descriptor["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        report["targets"][0]["manifest_digest"], digest,
        "the report names another manifest than the layout's index"
    );
    digest
}

#[test]
fn make_project_is_reproducible_across_caches_and_paths_network_root() {
    let target = "aarch64-linux";
    let manifest = "[image]\nname = \"greet\"\ncmd = [\"/usr/local/bin/greet\"]\n[packages]\ninclude = []\n[[build]]\nkind = \"make\"\nsource = { path = \"src\" }\n";
    // Each build: the project at its own path (of a different length, so a
    // leaked path also moves offsets), its own empty cache and output dir.
    let build = |nesting: &str| {
        let work = temp_dir("xbuild-repro-make-");
        let project = work.path().join(nesting).join("greet");
        make_project(&project.join("src"));
        std::fs::write(project.join("xbuild.toml"), manifest).unwrap();
        let xbuild = Xbuild::new().with_host_apt();
        let out = temp_dir("xbuild-repro-make-out-");
        let report = xbuild
            .build(&project, out.path(), &[target])
            .success()
            .json();
        let builds = nodes(&report, "build");
        assert!(
            builds.len() == 1 && builds[0]["outcome"] == "built",
            "an empty cache must build: {builds:?}"
        );
        let paths: Vec<String> = [&project, xbuild.cache_dir(), out.path()]
            .iter()
            .map(|path| path.to_string_lossy().into_owned())
            .collect();
        (work, xbuild, out, report, paths)
    };
    let (_first_work, _first_xbuild, first_out, first_report, first_paths) = build("a");
    let (_second_work, _second_xbuild, second_out, second_report, second_paths) =
        build("a-longer-path/one/level/deeper");
    let versions = |report: &Value| -> Vec<(String, String)> {
        report_packages(report)
            .into_iter()
            .map(|(name, version, _)| (name, version))
            .collect()
    };
    assert_eq!(
        versions(&first_report),
        versions(&second_report),
        "the mirror changed between the two builds; run the test again"
    );

    let first_manifest = layout_manifest_digest(first_out.path(), "arm64", &first_report);
    let second_manifest = layout_manifest_digest(second_out.path(), "arm64", &second_report);
    let suspects = [first_paths, second_paths].concat();
    let differences = layout_differences(
        &Layout::open(first_out.path()),
        &first_manifest,
        &Layout::open(second_out.path()),
        &second_manifest,
        &suspects,
    );
    assert!(
        first_manifest == second_manifest && differences.is_empty(),
        "two empty caches at two paths built different images ({first_manifest} vs \
         {second_manifest}):\n{}",
        differences.join("\n")
    );
}
