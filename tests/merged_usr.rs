//! Merged /usr for every suite: a package shipping `/bin/x` and
//! `/lib/libx.so` the way bookworm's still do gets them under `/usr` in
//! the image, whose first layer holds `bin -> usr/bin` and the other
//! links, and relative symlinks still name the files they named. The image
//! is unpacked by umoci, a tool independent of xbuild. Against the fixture
//! archive on 127.0.0.1: no network, no root.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::archive::{ARCH, ArchiveBuilder, DebSpec};
use support::run_ok;
use support::server::Server;
use support::xbuild::{
    FIXTURE_TARGET, Project, Xbuild, fixture_manifest, repository_url, temp_dir,
};

#[test]
fn a_package_with_bin_and_lib_unpacks_merged_with_links_that_resolve() {
    let unmerged = DebSpec::new("unmerged", "1.0-1", ARCH)
        .with_file("bin/x", b"#!/bin/sh\necho x\n", 0o755)
        .with_file("sbin/x-admin", b"#!/bin/sh\necho admin\n", 0o755)
        .with_file("lib/aarch64-linux-gnu/libx.so.1.0", b"libx", 0o644)
        .with_symlink("lib/aarch64-linux-gnu/libx.so.1", "libx.so.1.0")
        // Out of /lib into /usr/lib, as `-dev` packages' links do.
        .with_symlink(
            "lib/aarch64-linux-gnu/libx.so",
            "../../usr/lib/aarch64-linux-gnu/libx-real.so",
        )
        .with_file("usr/lib/aarch64-linux-gnu/libx-real.so", b"real", 0o644)
        .with_symlink("bin/x-link", "../usr/bin/unmerged")
        .with_symlink("bin/x-short", "x");
    let archive = ArchiveBuilder::empty().package(unmerged).build();
    let server = Server::serve(archive.root());
    let mut manifest = fixture_manifest(&repository_url(&server), &["unmerged"], "");
    manifest = manifest.replacen("cmd = [\"hello\"]", "cmd = [\"x\"]", 1);
    let project = Project::new(&manifest);
    fs::copy(&archive.keyring, project.path().join("fixture-key.gpg")).unwrap();

    let out = temp_dir("xbuild-out-");
    let report = Xbuild::new()
        .build(project.path(), out.path(), &[FIXTURE_TARGET])
        .success()
        .json();
    let layers = report["targets"][0]["layers"].as_array().unwrap();
    assert_eq!(layers[0]["packages"][0], "merged-/usr symlinks", "{report}");

    let bundle = out.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", out.path().join("oci").display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib32", "usr/lib32"),
        ("lib64", "usr/lib64"),
        ("libx32", "usr/libx32"),
    ] {
        assert_eq!(
            fs::read_link(rootfs.join(link)).unwrap(),
            Path::new(target),
            "{link}"
        );
    }
    // The files are under usr/, and found by their old paths too.
    for (path, contents) in [
        ("usr/bin/x", &b"#!/bin/sh\necho x\n"[..]),
        ("bin/x", b"#!/bin/sh\necho x\n"),
        ("usr/sbin/x-admin", b"#!/bin/sh\necho admin\n"),
        ("usr/lib/aarch64-linux-gnu/libx.so.1.0", b"libx"),
        ("lib/aarch64-linux-gnu/libx.so.1", b"libx"),
        ("usr/lib/aarch64-linux-gnu/libx.so", b"real"),
        ("bin/x-short", b"#!/bin/sh\necho x\n"),
    ] {
        assert_eq!(fs::read(rootfs.join(path)).unwrap(), contents, "{path}");
    }
    let unmerged_script = fs::read(rootfs.join("usr/bin/unmerged")).unwrap();
    assert_eq!(
        fs::read(rootfs.join("bin/x-link")).unwrap(),
        unmerged_script
    );
    // Relative links were re-expressed from their new place.
    assert_eq!(
        fs::read_link(rootfs.join("usr/lib/aarch64-linux-gnu/libx.so")).unwrap(),
        Path::new("libx-real.so")
    );
    assert_eq!(
        fs::read_link(rootfs.join("usr/bin/x-link")).unwrap(),
        Path::new("unmerged")
    );
    // dpkg's file list keeps the package's own paths.
    let status = fs::read_to_string(rootfs.join("var/lib/dpkg/status.d/unmerged")).unwrap();
    assert!(status.contains("Package: unmerged\n"), "{status}");
    // No tar entry of a package layer is under a merged directory.
    let layout = support::oci::Layout::open(out.path());
    let (_, manifest) = layout.manifest_for("arm64");
    for layer in &manifest["layers"].as_array().unwrap()[1..] {
        for entry in layout.layer_entries(layer) {
            let first = entry.path.split('/').next().unwrap();
            assert!(
                !["bin", "sbin", "lib", "lib32", "lib64", "libx32"].contains(&first),
                "{}",
                entry.path
            );
        }
    }
}
