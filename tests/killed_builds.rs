//! Builds killed mid-download, and builds sharing one cache, against the
//! signed fixture archive on 127.0.0.1 (no network, no root): the next run
//! removes what a killed build left, and never a temp file that a live
//! build is still writing.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::faulted::{
    FAULTED_DEB, FaultFixture, assert_no_half_written_entries, build_command, build_within,
    cache_leftovers, manifest_digest, project_for, run_within,
};
use support::faults::Fault;
use support::xbuild::{FIXTURE_TARGET, Xbuild, temp_dir};

const DEADLINE: Duration = Duration::from_secs(90);

/// Waits (up to 30 s) until `ready` holds, panicking otherwise.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The temp download files (`tmp/.part-*`) of a cache.
fn part_files(cache: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = fs::read_dir(cache.join("tmp"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with(".part-"))
                })
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts
}

/// The temp downloads of `cache` once the request for `pattern` has
/// arrived and the set has stopped changing for half a second: the stalled
/// downloads, not the short ones that come and go around them.
fn stalled_parts(fixture: &FaultFixture, pattern: &str, cache: &Path) -> Vec<PathBuf> {
    wait_until("the stalled request", || {
        !fixture.server.requests_for(pattern).is_empty()
    });
    let mut last = part_files(cache);
    let mut stable_since = Instant::now();
    wait_until("the temp downloads to settle", || {
        let now = part_files(cache);
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
        !last.is_empty() && stable_since.elapsed() > Duration::from_millis(500)
    });
    last
}

fn spawn_quiet(xbuild: &Xbuild, project: &Path, out: &Path) -> Child {
    build_command(xbuild, project, out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start xbuild")
}

fn still_running(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[test]
fn sigkill_mid_download_leaves_temp_files_that_the_next_run_removes() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture.server.inject(
        FAULTED_DEB,
        Fault::Stall {
            after_bytes: 200,
            seconds: None,
        },
        1,
    );
    let xbuild = Xbuild::new().with_env("XBUILD_HTTP_TIMEOUT", "60");
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let mut child = spawn_quiet(&xbuild, project.path(), out.path());
    wait_until("the stalled download to start", || {
        !fixture.server.requests_for(FAULTED_DEB).is_empty()
            && !part_files(xbuild.cache_dir()).is_empty()
    });
    // SIGKILL: no destructor runs, exactly like a crash or an OOM kill.
    child.kill().unwrap();
    child.wait().unwrap();
    let left = part_files(xbuild.cache_dir());
    assert!(!left.is_empty(), "the killed build left no temp file");
    // And what a toolchain assembly killed mid-unpack leaves.
    let partial_tree = xbuild
        .cache_dir()
        .join("toolchains-v1/.0123abcd.partial-Kill3d/bin");
    fs::create_dir_all(&partial_tree).unwrap();
    fs::write(partial_tree.join("gcc"), b"half").unwrap();

    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&run), reference);
    for path in &left {
        assert!(!path.exists(), "stale {} was not removed", path.display());
    }
    assert!(
        !xbuild
            .cache_dir()
            .join("toolchains-v1/.0123abcd.partial-Kill3d")
            .exists(),
        "a stale toolchain tree was not removed"
    );
    assert_no_half_written_entries(xbuild.cache_dir());
}

#[test]
fn concurrent_builds_on_one_cache_leave_each_others_live_temp_files_alone() {
    let fixture = FaultFixture::standard();
    let hello_reference = fixture.reference_digest();
    let mta_reference = fixture.reference_digest_of(&["tiny-mta"]);
    // Each build stalls in its own download, long enough for the others to
    // open the cache (and sweep it) meanwhile.
    fixture.server.inject(
        FAULTED_DEB,
        Fault::Stall {
            after_bytes: 200,
            seconds: Some(8),
        },
        1,
    );
    fixture.server.inject(
        "tiny-mta_",
        Fault::Stall {
            after_bytes: 200,
            seconds: Some(5),
        },
        1,
    );
    let cache = temp_dir("xbuild-shared-cache-");
    let xbuild = Xbuild::new()
        .with_cache_dir(cache.path())
        .with_env("XBUILD_HTTP_TIMEOUT", "60");
    let hello = fixture.project();
    let mta = project_for(&fixture.archive, &fixture.repository_url(), &["tiny-mta"]);
    let (hello_out, mta_out) = (temp_dir("xbuild-out-"), temp_dir("xbuild-out-"));

    let mut first = build_command(&xbuild, hello.path(), hello_out.path());
    let first = std::thread::spawn(move || run_within(&mut first, DEADLINE));
    let first_part = stalled_parts(&fixture, FAULTED_DEB, cache.path());

    let mut second = build_command(&xbuild, mta.path(), mta_out.path());
    let second = std::thread::spawn(move || run_within(&mut second, DEADLINE));
    let both = stalled_parts(&fixture, "tiny-mta_", cache.path());
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(
        first_part.iter().all(|path| both.contains(path)),
        "the second build removed the first one's download: {first_part:?} → {both:?}"
    );

    // A third process opening the cache while both are mid-download.
    let plan = xbuild.plan(hello.path(), &[FIXTURE_TARGET], false);
    plan.success();
    let after_plan = part_files(cache.path());
    assert_eq!(after_plan, both, "a sweep removed a live download");

    let first = first.join().unwrap();
    let second = second.join().unwrap();
    assert_eq!(manifest_digest(&first), hello_reference);
    assert_eq!(manifest_digest(&second), mta_reference);
    assert!(cache_leftovers(cache.path()).is_empty());
    assert_no_half_written_entries(cache.path());
}

#[test]
fn a_live_build_is_not_disturbed_by_another_that_starts_and_finishes_meanwhile() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    let mta_reference = fixture.reference_digest_of(&["tiny-mta"]);
    fixture.server.inject(
        FAULTED_DEB,
        Fault::Stall {
            after_bytes: 200,
            seconds: Some(6),
        },
        1,
    );
    let cache = temp_dir("xbuild-shared-cache-");
    let xbuild = Xbuild::new()
        .with_cache_dir(cache.path())
        .with_env("XBUILD_HTTP_TIMEOUT", "60");
    let hello = fixture.project();
    let out = temp_dir("xbuild-out-");
    let mut live = spawn_quiet(&xbuild, hello.path(), out.path());
    let live_part = stalled_parts(&fixture, FAULTED_DEB, cache.path());

    let mta = project_for(&fixture.archive, &fixture.repository_url(), &["tiny-mta"]);
    let mta_out = temp_dir("xbuild-out-");
    let other = build_within(&xbuild, mta.path(), mta_out.path(), DEADLINE);
    assert_eq!(manifest_digest(&other), mta_reference);
    assert!(
        still_running(&mut live),
        "the stall ended too soon for this test"
    );
    for path in &live_part {
        assert!(
            path.is_file(),
            "{} was removed under a live build",
            path.display()
        );
    }
    let status = live.wait().unwrap();
    assert!(status.success(), "the live build failed: {status}");
    let rerun = build_within(&xbuild, hello.path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&rerun), reference);
    assert_no_half_written_entries(cache.path());
}

#[test]
fn temporaries_a_killed_build_left_beside_its_outputs_are_removed_by_the_next_build() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    // What a build killed while writing its outputs leaves.
    let stale = [
        out.path().join(".oci.partial-Kill3d"),
        out.path().join(".oci.old-Kill3d"),
        out.path()
            .join(format!(".{FIXTURE_TARGET}.tar.partial-Kill3d")),
    ];
    fs::create_dir_all(stale[0].join("blobs/sha256")).unwrap();
    fs::create_dir_all(stale[1].join("oci")).unwrap();
    fs::write(&stale[2], b"half a tar").unwrap();
    // Not a temporary of ours: left alone.
    let unrelated = out.path().join(".notes.partial-mine");
    fs::write(&unrelated, b"keep").unwrap();
    let run = build_within(&Xbuild::new(), project.path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&run), reference);
    for path in &stale {
        assert!(!path.exists(), "stale {} was not removed", path.display());
    }
    assert!(unrelated.exists());
    assert!(out.path().join("oci/index.json").is_file());
}
