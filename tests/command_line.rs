//! The command line the design card names, against the fixture archive on
//! 127.0.0.1: `cd my-project && xbuild --target aarch64-linux` builds as
//! `xbuild build . --target aarch64-linux` does; the other commands still
//! parse; and an unchanged rebuild does not rewrite its outputs.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use support::archive::ArchiveBuilder;
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, Xbuild};

#[test]
fn build_is_the_default_command() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let xbuild = Xbuild::new();
    let output = xbuild
        .command()
        .current_dir(project.path())
        .args(["--target", FIXTURE_TARGET, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["targets"][0]["target"], FIXTURE_TARGET);
    let result = project.path().join("result");
    assert!(result.join("oci/index.json").is_file());
    assert!(result.join(format!("{FIXTURE_TARGET}.tar")).is_file());

    // The explicit form gives the same image.
    let explicit = xbuild
        .run(&[
            "build",
            project.path().to_str().unwrap(),
            "--target",
            FIXTURE_TARGET,
            "--json",
        ])
        .success()
        .json();
    assert_eq!(
        explicit["targets"][0]["manifest_digest"],
        report["targets"][0]["manifest_digest"]
    );
    // A command name is still a command, not a directory.
    let listed = xbuild.run(&["targets"]).success().stdout.clone();
    assert!(listed.contains("aarch64-linux"), "{listed}");
    // Without a target: a usage error naming what is missing.
    let missing = xbuild
        .command()
        .current_dir(project.path())
        .arg(".")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--target"));
}

/// (size, mtime, inode) of a file.
fn identity(path: &Path) -> (u64, i64, i64, u64) {
    let metadata = std::fs::metadata(path).unwrap();
    (
        metadata.len(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.ino(),
    )
}

#[test]
fn an_unchanged_rebuild_does_not_rewrite_its_outputs() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let xbuild = Xbuild::new();
    let out = project.path().join("out");
    let build = || {
        xbuild
            .build(project.path(), &out, &[FIXTURE_TARGET])
            .success()
            .json()
    };
    build();
    let archive_path = out.join(format!("{FIXTURE_TARGET}.tar"));
    let index = out.join("oci/index.json");
    let (archive_before, index_before) = (identity(&archive_path), identity(&index));
    build();
    assert_eq!(
        identity(&archive_path),
        archive_before,
        "the docker-archive was rewritten"
    );
    assert_eq!(
        identity(&index),
        index_before,
        "the OCI layout was rewritten"
    );

    // An output changed by someone else is written again.
    std::fs::write(&archive_path, b"not an image").unwrap();
    std::fs::remove_file(
        out.join("oci/blobs/sha256")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    build();
    let bytes = std::fs::read(&archive_path).unwrap();
    assert!(
        bytes.len() > 1024 && &bytes[257..262] == b"ustar",
        "not rewritten"
    );
    assert_ne!(
        identity(&index),
        index_before,
        "the damaged layout was not rewritten"
    );
    let layout = support::oci::Layout::open(&out);
    for descriptor in layout.manifest_descriptors() {
        let manifest = layout.json_blob(descriptor["digest"].as_str().unwrap());
        for layer in manifest["layers"].as_array().unwrap() {
            layout.blob(layer["digest"].as_str().unwrap());
        }
    }
}
