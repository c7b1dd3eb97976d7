//! Network faults, injected by a loopback server in front of the signed
//! fixture archive (no network, no root): stalls, transfers that end short,
//! a slow trickle, redirects to a closed port, persistent 503s. Each test
//! names what it pins, and after each fault checks that the cache holds
//! nothing half written or unverified and that a rebuild on the same cache
//! gives the image an unfaulted build gives.
//!
//! The idle timeout is set to one second through `XBUILD_HTTP_TIMEOUT`, so
//! no test waits long for a stall to be noticed.

mod support;

use std::time::{Duration, Instant};

use support::faulted::{
    FAULTED_DEB, FaultFixture, assert_heals_to, build_within, cached_debs, exit_code,
    manifest_digest, project_for,
};
use support::faults::{Fault, closed_port_url};
use support::xbuild::{Xbuild, temp_dir};

const DEADLINE: Duration = Duration::from_secs(90);

/// A build whose HTTP idle timeout is one second.
fn impatient() -> Xbuild {
    Xbuild::new().with_env("XBUILD_HTTP_TIMEOUT", "1")
}

fn deb_requests(fixture: &FaultFixture) -> usize {
    fixture.server.requests_for(FAULTED_DEB).len()
}

#[test]
fn body_stalled_mid_transfer_times_out_and_is_retried() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture.server.inject(
        FAULTED_DEB,
        Fault::Stall {
            after_bytes: 200,
            seconds: Some(30),
        },
        1,
    );
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let start = Instant::now();
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    let elapsed = start.elapsed();
    assert_eq!(manifest_digest(&run), reference);
    assert!(
        elapsed < Duration::from_secs(20),
        "a 30 s stall held the build {elapsed:?}: no idle timeout\n{run}"
    );
    assert_eq!(
        deb_requests(&fixture),
        2,
        "the stalled transfer was not retried"
    );
    assert!(run.stderr.contains("retry"), "no retry note:\n{run}");
    eprintln!("{run}");
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn endless_stall_fails_with_exit_3_naming_the_url_and_the_timeout() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture.server.inject(
        FAULTED_DEB,
        Fault::Stall {
            after_bytes: 200,
            seconds: None,
        },
        usize::MAX,
    );
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    run.failure();
    assert_eq!(exit_code(&run), 3, "{run}");
    assert!(run.stderr.contains(FAULTED_DEB), "URL not named:\n{run}");
    assert!(
        run.stderr.contains("no data for 1 s"),
        "the stall is not named:\n{run}"
    );
    assert!(
        run.stderr.contains("XBUILD_HTTP_TIMEOUT"),
        "no hint:\n{run}"
    );
    assert_eq!(deb_requests(&fixture), 4, "four attempts expected");
    assert!(
        !cached_debs(&fixture.archive, xbuild.cache_dir())
            .contains(&format!("{FAULTED_DEB}_arm64.deb"))
    );
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn stalled_inrelease_times_out_and_is_retried() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture.server.inject(
        "InRelease",
        Fault::Stall {
            after_bytes: 100,
            seconds: Some(30),
        },
        1,
    );
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let start = Instant::now();
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&run), reference);
    assert!(start.elapsed() < Duration::from_secs(20), "{run}");
    assert_eq!(fixture.server.requests_for("InRelease").len(), 2);
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn stall_on_inrelease_holds_its_lock_from_other_builds_only_until_the_idle_timeout() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    // The first InRelease request stalls for good; the retry is served.
    fixture.server.inject(
        "InRelease",
        Fault::Stall {
            after_bytes: 100,
            seconds: None,
        },
        1,
    );
    let cache = temp_dir("xbuild-shared-cache-");
    let xbuild = impatient().with_cache_dir(cache.path());
    let project = fixture.project();
    let start = Instant::now();
    let builds: Vec<_> = (0..2)
        .map(|index| {
            if index == 1 {
                // The second waits for the first's InRelease lock.
                while fixture.server.requests_for("InRelease").is_empty() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let out = temp_dir("xbuild-out-");
            let mut command = support::faulted::build_command(&xbuild, project.path(), out.path());
            std::thread::spawn(move || {
                let run = support::faulted::run_within(&mut command, DEADLINE);
                drop(out);
                run
            })
        })
        .collect();
    for build in builds {
        assert_eq!(manifest_digest(&build.join().unwrap()), reference);
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "an endless InRelease stall held both builds {:?}",
        start.elapsed()
    );
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn slow_but_moving_download_is_not_cut_off() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    let size = fixture.archive.deb("hello").size as usize;
    // About three seconds in all, three times the idle timeout, but never
    // silent for more than a fifth of it.
    let chunk = size.div_ceil(15).max(1);
    fixture.server.inject(
        FAULTED_DEB,
        Fault::Trickle {
            chunk,
            pause: Duration::from_millis(200),
        },
        1,
    );
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let start = Instant::now();
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&run), reference);
    assert!(
        start.elapsed() > Duration::from_secs(2),
        "the trickle was not slow"
    );
    assert_eq!(
        deb_requests(&fixture),
        1,
        "a moving download was cut off and retried:\n{run}"
    );
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn body_closed_before_its_content_length_is_retried() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture
        .server
        .inject(FAULTED_DEB, Fault::Truncate { bytes: 300 }, 2);
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&run), reference);
    assert_eq!(deb_requests(&fixture), 3);
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn too_short_content_length_is_a_retried_short_transfer_not_a_digest_mismatch() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture
        .server
        .inject(FAULTED_DEB, Fault::ShortLength { bytes: 300 }, 2);
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    assert_eq!(manifest_digest(&run), reference);
    assert_eq!(
        deb_requests(&fixture),
        3,
        "the short transfer was not retried"
    );
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn persistent_short_transfer_exits_3_with_the_sizes_not_4() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture
        .server
        .inject(FAULTED_DEB, Fault::ShortLength { bytes: 300 }, usize::MAX);
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    run.failure();
    assert_eq!(exit_code(&run), 3, "{run}");
    let size = fixture.archive.deb("hello").size;
    assert!(
        run.stderr
            .contains(&format!("ended after 300 of {size} bytes")),
        "{run}"
    );
    assert_eq!(deb_requests(&fixture), 4);
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn redirect_to_a_closed_port_names_the_url_that_failed_without_credentials() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    let deb = fixture.archive.deb("hello");
    let dead = closed_port_url(&format!("debian/{}", deb.filename));
    let dead_with_credentials = dead.replacen("http://", "http://mirror-user:hop-secret@", 1);
    fixture.server.inject(
        FAULTED_DEB,
        Fault::Redirect(dead_with_credentials),
        usize::MAX,
    );
    let xbuild = impatient();
    let repository = fixture
        .repository_url()
        .replacen("http://", "http://user:repo-secret@", 1);
    let project = project_for(&fixture.archive, &repository, &["hello"]);
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    run.failure();
    assert_eq!(exit_code(&run), 3, "{run}");
    let dead_shown = dead.replacen("http://", "http://***@", 1);
    assert!(
        run.stderr.contains(&format!("request to {dead_shown}")),
        "the redirect target that failed is not named:\n{run}"
    );
    assert!(
        run.stderr.contains("redirected from http://***@127.0.0.1"),
        "the original URL is not named:\n{run}"
    );
    assert!(
        !run.stderr.contains("secret"),
        "credentials printed:\n{run}"
    );
    assert_eq!(deb_requests(&fixture), 4);
    // The healed server is read without credentials in the URL.
    let project = fixture.project();
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn persistent_503_exits_3_after_four_attempts() {
    let fixture = FaultFixture::standard();
    let reference = fixture.reference_digest();
    fixture
        .server
        .inject(FAULTED_DEB, Fault::Status(503), usize::MAX);
    let xbuild = impatient();
    let project = fixture.project();
    let out = temp_dir("xbuild-out-");
    let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
    run.failure();
    assert_eq!(exit_code(&run), 3, "{run}");
    assert!(run.stderr.contains("HTTP 503"), "{run}");
    assert!(run.stderr.contains(FAULTED_DEB), "{run}");
    assert_eq!(deb_requests(&fixture), 4);
    assert_heals_to(&fixture, &xbuild, &project, &reference);
}

#[test]
fn http_timeout_must_be_a_positive_number_of_seconds() {
    let fixture = FaultFixture::standard();
    let project = fixture.project();
    for bad in ["0", "-1", "soon"] {
        let xbuild = Xbuild::new().with_env("XBUILD_HTTP_TIMEOUT", bad);
        let out = temp_dir("xbuild-out-");
        let run = build_within(&xbuild, project.path(), out.path(), DEADLINE);
        run.failure();
        assert_eq!(exit_code(&run), 2, "{run}");
        assert!(run.stderr.contains("--http-timeout"), "{run}");
        assert!(run.stderr.contains(bad), "{run}");
    }
    assert!(fixture.server.requests().is_empty());
}
