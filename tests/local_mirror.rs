//! `file://` repositories: a local mirror directory (apt-mirror, aptly, a
//! `debian/` tree on disk), read with the same checks as an HTTP mirror —
//! the InRelease signature, the index digests, the `.deb` digests — and the
//! same cache behaviour: a package from a local mirror is verified and
//! stored by digest. Uses the signed fixture archive on disk (no network,
//! no root); the HTTP comparisons serve the same archive on 127.0.0.1.

mod support;

use std::path::Path;

use support::archive::{Archive, ArchiveBuilder, URL_PATH};
use support::faulted::{assert_no_half_written_entries, manifest_digest, project_for};
use support::files::files_with_sha256;
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, temp_dir};

const CLOSURE: [&str; 4] = ["hello", "hello-data", "libc6", "libgreet"];

fn file_url(archive: &Archive) -> String {
    format!("file://{}", archive.base().display())
}

fn local_project(archive: &Archive) -> Project {
    project_for(archive, &file_url(archive), &["hello"])
}

fn build(xbuild: &Xbuild, project: &Project) -> RunOutput {
    let out = temp_dir("xbuild-out-");
    xbuild.build(project.path(), out.path(), &[FIXTURE_TARGET])
}

fn exit_code(run: &RunOutput) -> i32 {
    run.status
        .code()
        .unwrap_or_else(|| panic!("killed:\n{run}"))
}

fn http_reference(archive: &Archive) -> String {
    let server = Server::serve(archive.root());
    let project = project_for(archive, &server.url(URL_PATH), &["hello"]);
    manifest_digest(&build(&Xbuild::new(), &project))
}

fn closure_deb_digests(archive: &Archive) -> Vec<String> {
    CLOSURE
        .iter()
        .map(|name| match *name {
            "libgreet" => archive.deb_version("libgreet", "2.1-1").sha256.clone(),
            name => archive.deb(name).sha256.clone(),
        })
        .collect()
}

fn assert_refused_and_nothing_kept(run: &RunOutput, cache: &Path, tampered: &[String]) {
    run.failure();
    assert_eq!(exit_code(run), 4, "{run}");
    let kept = files_with_sha256(cache, tampered);
    assert!(kept.is_empty(), "tampered content cached: {kept:?}\n{run}");
    assert_no_half_written_entries(cache);
}

#[test]
fn local_mirror_builds_the_image_an_http_mirror_gives_and_stores_debs_by_digest() {
    let archive = ArchiveBuilder::standard().build();
    let reference = http_reference(&archive);
    let xbuild = Xbuild::new();
    let project = local_project(&archive);
    let first = build(&xbuild, &project);
    assert_eq!(manifest_digest(&first), reference, "{first}");
    for digest in closure_deb_digests(&archive) {
        assert!(
            xbuild
                .cache_dir()
                .join("blobs-v1/sha256")
                .join(&digest)
                .is_file(),
            "deb {digest} is not stored by digest"
        );
    }
    assert!(
        first.json()["repository"]
            .as_str()
            .unwrap()
            .starts_with("file:///")
    );
    // Stored like a download: the rebuild reads nothing from the mirror.
    let second = build(&xbuild, &project);
    assert_eq!(manifest_digest(&second), reference);
    assert_eq!(second.json()["summary"]["downloaded"], 0, "{second}");
    assert_no_half_written_entries(xbuild.cache_dir());
}

#[test]
fn mirror_flag_takes_a_local_mirror() {
    let archive = ArchiveBuilder::standard().build();
    let reference = http_reference(&archive);
    // The manifest names a server nobody runs; --mirror replaces it.
    let project = project_for(&archive, "http://127.0.0.1:9/debian", &["hello"]);
    let out = temp_dir("xbuild-out-");
    let mut command = Xbuild::new().command();
    command
        .args(["build", "--json", "--target", FIXTURE_TARGET, "--out"])
        .arg(out.path())
        .arg("--mirror")
        .arg(format!("{}/", file_url(&archive)))
        .arg(project.path());
    let output = command.output().unwrap();
    let run = RunOutput {
        command: format!("{command:?}"),
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_eq!(manifest_digest(&run), reference);
}

#[test]
fn tampered_deb_in_a_local_mirror_is_refused_naming_its_file_url() {
    let archive = ArchiveBuilder::standard().build();
    let tampered = archive.tamper_deb(archive.deb("hello"));
    let xbuild = Xbuild::new();
    let run = build(&xbuild, &local_project(&archive));
    assert_refused_and_nothing_kept(&run, xbuild.cache_dir(), &[tampered]);
    let url = format!("{}/{}", file_url(&archive), archive.deb("hello").filename);
    assert!(
        run.stderr.contains(&url),
        "the file URL is not named:\n{run}"
    );
    assert!(
        run.stderr.contains("does not match its expected digest"),
        "{run}"
    );
}

#[test]
fn tampered_index_in_a_local_mirror_is_refused() {
    let archive = ArchiveBuilder::standard().build();
    let tampered = archive.tamper_packages();
    let xbuild = Xbuild::new();
    let run = build(&xbuild, &local_project(&archive));
    assert_refused_and_nothing_kept(&run, xbuild.cache_dir(), &tampered);
    assert!(run.stderr.contains("Packages"), "{run}");
}

#[test]
fn bad_signature_in_a_local_mirror_is_refused() {
    let archive = ArchiveBuilder::standard().build();
    let tampered = archive.break_signature();
    let xbuild = Xbuild::new();
    let run = build(&xbuild, &local_project(&archive));
    assert_refused_and_nothing_kept(&run, xbuild.cache_dir(), &[tampered]);
    assert!(run.stderr.contains("InRelease"), "{run}");
}

#[test]
fn missing_local_mirror_is_an_input_error_naming_the_path() {
    let archive = ArchiveBuilder::standard().build();
    let missing = temp_dir("xbuild-no-mirror-");
    let url = format!("file://{}/debian", missing.path().display());
    let project = project_for(&archive, &url, &["hello"]);
    let xbuild = Xbuild::new();
    let run = build(&xbuild, &project);
    run.failure();
    assert_eq!(exit_code(&run), 2, "{run}");
    let inrelease = missing.path().join("debian/dists/fixture/InRelease");
    assert!(
        run.stderr.contains(&inrelease.display().to_string()),
        "the missing file is not named:\n{run}"
    );
    assert!(run.stderr.contains("hint: "), "{run}");
    assert_no_half_written_entries(xbuild.cache_dir());
}
