//! A signed InRelease that goes back in time, against the fixture archive
//! on 127.0.0.1 (no network, no root): a mirror serving an older, validly
//! signed snapshot than one this cache verified is refused (exit 4); an
//! older InRelease put back on a remote cache is never used by a machine
//! that verified a newer one (it asks the mirror, with a warning), and a
//! fresh machine uses a shared one only within a bounded age; an InRelease
//! cut short on its way is fetched again; a password in the mirror URL is
//! stored nowhere.

mod support;

use std::time::Duration;

use serde_json::Value;

use support::archive::{ARCH, Archive, ArchiveBuilder, DebSpec, SUITE, standard_packages};
use support::dates::now_plus;
use support::faulted::{FaultFixture, build_within};
use support::faults::Fault;
use support::files::all_files;
use support::server::Server;
use support::suites::SuiteSpec;
use support::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, keygen, temp_dir};

/// The standard suite again, signed with `Date` `seconds` from now, plus
/// `extra` packages.
fn snapshot(archive: &Archive, seconds: i64, extra: Vec<DebSpec>) {
    let mut packages = standard_packages();
    packages.extend(extra);
    archive.publish_suite(&SuiteSpec::new(SUITE, packages).dated(now_plus(seconds)));
}

/// Snapshot 2: a newer `libgreet`, signed a minute ago.
fn newer_snapshot(archive: &Archive) {
    snapshot(
        archive,
        -60,
        vec![
            DebSpec::new("libgreet", "2.2-1", ARCH)
                .with_multi_arch("same")
                .with_depends("libc6 (>= 2.34)"),
        ],
    );
}

fn libgreet(run: &RunOutput) -> String {
    let report = run.success().json();
    report["targets"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "libgreet")
        .map(|package| package["version"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no libgreet in {report}"))
}

fn inrelease_requests(server: &Server) -> usize {
    server
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/InRelease"))
        .count()
}

#[test]
fn a_mirror_that_goes_back_in_time_is_refused() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    newer_snapshot(&archive);
    let machine = Xbuild::new();
    assert_eq!(libgreet(&machine.build_with(project.path(), &[])), "2.2-1");

    // The mirror serves the older snapshot again: validly signed, within
    // any Valid-Until, and older than what this cache verified.
    snapshot(&archive, -3600, Vec::new());
    let refused = machine.build_with(project.path(), &["--refresh"]);
    assert_eq!(refused.status.code(), Some(4), "{refused}");
    assert!(
        refused.stderr.contains("older than the InRelease of")
            && refused.stderr.contains("never used"),
        "{}",
        refused.stderr
    );
    // The newer one is still what the cache holds.
    assert_eq!(libgreet(&machine.build_with(project.path(), &[])), "2.2-1");
}

#[test]
fn an_older_inrelease_on_a_remote_is_not_used() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, public) = keygen(keys.path(), "ci");
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());

    // A builds from snapshot 1 and shares its (signed) InRelease entry.
    let a = Xbuild::new();
    let built = a.build_with(
        project.path(),
        &["--remote", &remote, "--sign", secret.to_str().unwrap()],
    );
    assert_eq!(libgreet(&built), "2.1-1");
    newer_snapshot(&archive);

    // A fresh machine uses the shared InRelease while it is young (a CI
    // matrix resolves one closure without asking the mirror)…
    server.clear_log();
    let young =
        Xbuild::new().build_with(project.path(), &["--remote", &remote, "--trust", &public]);
    assert_eq!(libgreet(&young), "2.1-1");
    assert_eq!(inrelease_requests(&server), 0, "{:?}", server.requests());
    // …and asks the mirror once it is older than the window.
    std::thread::sleep(Duration::from_secs(2));
    let old = Xbuild::new()
        .with_env("XBUILD_SHARED_INDEX_MAX_AGE", "1")
        .build_with(project.path(), &["--remote", &remote, "--trust", &public]);
    assert_eq!(libgreet(&old), "2.2-1", "{old}");
    assert!(inrelease_requests(&server) > 0);

    // A machine that verified snapshot 2 never goes back to snapshot 1,
    // even when the remote offers it within the window.
    let c = Xbuild::new();
    assert_eq!(libgreet(&c.build_with(project.path(), &[])), "2.2-1");
    std::fs::remove_dir_all(c.cache_dir().join("entries-v2/inrelease-v1")).unwrap();
    let replayed = c.build_with(project.path(), &["--remote", &remote, "--trust", &public]);
    assert_eq!(libgreet(&replayed), "2.2-1", "{replayed}");
    assert!(
        replayed.stderr.contains("older than the InRelease of")
            && replayed.stderr.contains("from a remote cache")
            && replayed.stderr.contains("asking the mirror"),
        "{}",
        replayed.stderr
    );
}

#[test]
fn an_inrelease_cut_short_is_fetched_again() {
    let fixture = FaultFixture::standard();
    // A well-formed answer that ends early: only the signature check sees it.
    fixture
        .server
        .inject("/InRelease", Fault::ShortLength { bytes: 400 }, 1);
    let out = temp_dir("xbuild-out-");
    let run = build_within(
        &Xbuild::new(),
        fixture.project().path(),
        out.path(),
        Duration::from_secs(60),
    );
    run.success();
    let attempts = fixture
        .server
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/InRelease"))
        .count();
    assert_eq!(attempts, 2, "{:?}", fixture.server.requests());
}

#[test]
fn a_password_in_the_mirror_url_is_stored_nowhere() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let url = server
        .url("debian")
        .replace("http://", "http://builder:hunter2secret@");
    let project = Project::new(&support::xbuild::fixture_manifest(&url, &["hello"], ""));
    std::fs::copy(&archive.keyring, project.path().join("fixture-key.gpg")).unwrap();
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());
    let keys = temp_dir("xbuild-keys-");
    let (secret, _) = keygen(keys.path(), "ci");
    let machine = Xbuild::new();
    let run = machine.build_with(
        project.path(),
        &["--remote", &remote, "--sign", secret.to_str().unwrap()],
    );
    let report: Value = run.success().json();
    for text in [run.stdout.as_str(), run.stderr.as_str()] {
        assert!(!text.contains("hunter2secret"), "printed: {text}");
    }
    let plan = machine
        .plan(project.path(), &[FIXTURE_TARGET], true)
        .success()
        .stdout
        .clone();
    assert!(!plan.contains("hunter2secret"), "{plan}");
    for dir in [machine.cache_dir(), remote_dir.path()] {
        for file in all_files(dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(13).any(|window| window == b"hunter2secret"),
                "{} holds the password",
                file.display()
            );
        }
    }
    assert!(
        report["repository"].as_str().unwrap().contains("***@"),
        "{report}"
    );
}
