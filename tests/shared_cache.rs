//! Two "machines" (two empty local caches) sharing one remote cache — a
//! directory, nginx with WebDAV PUT, Debian's docker-registry, each started
//! by the test on 127.0.0.1 — against the fixture archive: what A built
//! and pushed, signed, B uses without asking the archive anything; what is
//! unsigned, signed by a key B does not trust, or altered is refused and
//! never enters B's cache; a remote that is down or refuses uploads never
//! fails a build.

mod support;

#[path = "../cache/tests/remote/servers.rs"]
#[allow(dead_code)]
mod servers;

use serde_json::Value;
use servers::{Failing, Nginx, NginxOptions, Registry};
use std::path::Path;
use support::archive::ArchiveBuilder;
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, Xbuild, keygen, temp_dir};

fn summary(report: &Value, field: &str) -> u64 {
    report["summary"][field].as_u64().unwrap()
}

/// `xbuild cache prewarm PROJECT --remote REMOTE --sign SECRET --json` on an
/// empty cache of its own.
fn prewarm_json(project: &Path, remote: &str, secret: &Path) -> support::xbuild::RunOutput {
    Xbuild::new().run(&[
        "cache",
        "prewarm",
        project.to_str().unwrap(),
        "--target",
        FIXTURE_TARGET,
        "--remote",
        remote,
        "--sign",
        secret.to_str().unwrap(),
        "--json",
    ])
}

fn manifest_digests(report: &Value) -> Vec<String> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|target| target["manifest_digest"].as_str().unwrap().to_owned())
        .collect()
}

/// A builds and pushes to `remote`; B, with only `--remote` and `--trust`,
/// gets every node from the remote, asks the archive nothing, and makes the
/// same image; a second push from A uploads nothing.
fn two_machines_share(remote: &str) {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, public) = keygen(keys.path(), "ci");

    let a = Xbuild::new();
    let built = a.build_with(
        project.path(),
        &["--remote", remote, "--sign", secret.to_str().unwrap()],
    );
    let built_report = built.success().json();
    assert!(
        summary(&built_report, "built") > 0,
        "{}",
        built_report["summary"]
    );
    assert!(built.stderr.contains("pushed to"), "{built}");

    let b = Xbuild::new();
    server.clear_log();
    let shared = b.build_with(project.path(), &["--remote", remote, "--trust", &public]);
    let shared_report = shared.success().json();
    assert_eq!(summary(&shared_report, "downloaded"), 0, "{shared}");
    assert_eq!(summary(&shared_report, "built"), 0, "{shared}");
    assert_eq!(summary(&shared_report, "local"), 0, "{shared}");
    assert!(summary(&shared_report, "remote") > 0, "{shared}");
    assert!(
        server.requests().is_empty(),
        "B asked the archive: {:?}",
        server.requests()
    );
    assert_eq!(
        manifest_digests(&built_report),
        manifest_digests(&shared_report)
    );

    // Everything is there: a second push moves nothing.
    let again = a.build_with(
        project.path(),
        &["--remote", remote, "--sign", secret.to_str().unwrap()],
    );
    again.success();
    assert!(
        again.stderr.contains(": 0 entries, 0 blobs"),
        "the second push uploaded something:\n{again}"
    );

    // B's cache holds the entries now: verify finds it clean.
    b.run(&["cache", "verify"]).success();
}

#[test]
fn two_machines_share_through_a_directory() {
    let remote = temp_dir("xbuild-remote-");
    two_machines_share(&format!("file://{}", remote.path().display()));
}

#[test]
fn two_machines_share_through_webdav() {
    let nginx = Nginx::start(NginxOptions::default());
    two_machines_share(&nginx.url("xbuild"));
}

#[test]
fn two_machines_share_through_a_registry() {
    let registry = Registry::start();
    two_machines_share(&registry.url("team/cache"));
}

#[test]
fn entries_signed_by_an_untrusted_key_are_refused_and_the_build_goes_upstream() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, _) = keygen(keys.path(), "ci");
    let (_, other) = keygen(keys.path(), "someone-else");
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());

    Xbuild::new()
        .build_with(
            project.path(),
            &["--remote", &remote, "--sign", secret.to_str().unwrap()],
        )
        .success();
    let b = Xbuild::new();
    let refused = b.build_with(project.path(), &["--remote", &remote, "--trust", &other]);
    let report = refused.success().json();
    assert_eq!(summary(&report, "remote"), 0, "{refused}");
    assert!(summary(&report, "downloaded") > 0, "{refused}");
    assert!(
        refused.stderr.contains("warning:") && refused.stderr.contains("ci"),
        "the refusal does not name the signer:\n{refused}"
    );
}

#[test]
fn an_altered_blob_on_the_remote_is_refused_and_never_enters_the_cache() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, public) = keygen(keys.path(), "ci");
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());
    let built = Xbuild::new()
        .build_with(
            project.path(),
            &["--remote", &remote, "--sign", secret.to_str().unwrap()],
        )
        .success()
        .json();
    // Flip a byte in every blob of the remote that is not the InRelease or
    // an index: the layers.
    let layer_digests: Vec<String> = built["targets"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            layer["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_owned()
        })
        .collect();
    assert!(!layer_digests.is_empty(), "{built}");
    for hex in &layer_digests {
        let path = remote_dir.path().join("blobs-v1/sha256").join(hex);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let b = Xbuild::new();
    let refused = b.build_with(project.path(), &["--remote", &remote, "--trust", &public]);
    let report = refused.success().json();
    assert!(summary(&report, "built") > 0, "{refused}");
    assert!(refused.stderr.contains("warning:"), "{refused}");
    for hex in &layer_digests {
        let local = b.cache_dir().join("blobs-v1/sha256").join(hex);
        // The layer was rebuilt here, with the right bytes, or is absent:
        // never the altered ones.
        if let Ok(bytes) = std::fs::read(&local) {
            let digest = support::archive::sha256_hex(&bytes);
            assert_eq!(&digest, hex, "an altered blob entered B's cache");
        }
    }
    b.run(&["cache", "verify"]).success();
}

#[test]
fn a_remote_that_is_down_or_refuses_uploads_never_fails_a_build() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, public) = keygen(keys.path(), "ci");
    let down = format!("http://127.0.0.1:{}/xbuild", servers::free_port());
    let output = Xbuild::new().build_with(
        project.path(),
        &[
            "--remote",
            &down,
            "--trust",
            &public,
            "--sign",
            secret.to_str().unwrap(),
        ],
    );
    output.success();
    assert!(output.stderr.contains("warning"), "{output}");

    let failing = Failing::start();
    let failing_url = format!("http://127.0.0.1:{}/xbuild", failing.port);
    let output = Xbuild::new().build_with(
        project.path(),
        &["--remote", &failing_url, "--sign", secret.to_str().unwrap()],
    );
    output.success();
    assert!(output.stderr.contains("failed"), "{output}");

    // prewarm is the exception: a failed upload is its failure.
    let prewarm = Xbuild::new().run(&[
        "cache",
        "prewarm",
        project.path().to_str().unwrap(),
        "--target",
        FIXTURE_TARGET,
        "--remote",
        &failing_url,
        "--sign",
        secret.to_str().unwrap(),
    ]);
    assert_eq!(prewarm.status.code(), Some(3), "{prewarm}");
}

#[test]
fn prewarm_then_require_hits_passes_on_an_empty_cache() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, public) = keygen(keys.path(), "ci");
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());

    // Cold, without a remote: refused before any work, naming the nodes.
    let cold = Xbuild::new().build_with(project.path(), &["--require-hits"]);
    assert_eq!(cold.status.code(), Some(8), "{cold}");
    assert!(cold.stderr.contains("layer"), "{cold}");

    let prewarm = prewarm_json(project.path(), &remote, &secret);
    let uploaded = prewarm.success().json();
    assert!(
        uploaded["upload"]["remotes"][0]["entries_uploaded"]
            .as_u64()
            .unwrap()
            > 0,
        "{prewarm}"
    );
    let again = prewarm_json(project.path(), &remote, &secret);
    let second = again.success().json();
    assert_eq!(
        second["upload"]["remotes"][0]["bytes_uploaded"].as_u64(),
        Some(0),
        "a second prewarm uploaded bytes: {again}"
    );

    let b = Xbuild::new().build_with(
        project.path(),
        &[
            "--remote",
            &remote,
            "--trust",
            &public,
            "--require-hits=all",
        ],
    );
    let report = b.success().json();
    assert_eq!(summary(&report, "built"), 0, "{b}");
    assert_eq!(summary(&report, "downloaded"), 0, "{b}");
}

#[test]
fn four_builds_at_once_on_one_cache_and_one_remote_and_kills_during_prewarm() {
    use std::process::Stdio;
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, public) = keygen(keys.path(), "ci");
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());

    // Four at once on one local cache, all pushing to one remote.
    let shared = Xbuild::new();
    let outs: Vec<_> = (0..4).map(|_| temp_dir("xbuild-out-")).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            let mut command = shared.command();
            command
                .arg("build")
                .arg(project.path())
                .arg("--out")
                .arg(out.path())
                .args(["--json", "--target", FIXTURE_TARGET, "--remote", &remote])
                .arg("--sign")
                .arg(&secret)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    shared.run(&["cache", "verify"]).success();
    let b = Xbuild::new();
    let from_remote = b.build_with(project.path(), &["--remote", &remote, "--trust", &public]);
    let report = from_remote.success().json();
    assert_eq!(summary(&report, "built"), 0, "{from_remote}");
    assert_eq!(summary(&report, "downloaded"), 0, "{from_remote}");
    b.run(&["cache", "verify"]).success();

    // A prewarm killed at different moments leaves nothing a client would
    // use half-written: B always builds, and its cache verifies clean.
    for delay in [30u64, 120, 250, 400, 700] {
        let remote_dir = temp_dir("xbuild-remote-");
        let remote = format!("file://{}", remote_dir.path().display());
        let a = Xbuild::new();
        let mut child = a
            .command()
            .args(["cache", "prewarm"])
            .arg(project.path())
            .args(["--target", FIXTURE_TARGET, "--remote", &remote])
            .arg("--sign")
            .arg(&secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let b = Xbuild::new();
        let output = b.build_with(project.path(), &["--remote", &remote, "--trust", &public]);
        output.success();
        b.run(&["cache", "verify"]).success();
    }
}

/// Uploads go as the build goes: a build that fails at its last step
/// (writing the output, here into a path under a regular file) has already
/// shared every layer it made, and B builds from them without the archive.
#[test]
fn a_build_that_fails_at_the_end_has_already_shared_what_it_made() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");
    let keys = temp_dir("xbuild-keys-");
    let (secret, public) = keygen(keys.path(), "ci");
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());

    let blocked = temp_dir("xbuild-out-");
    let file = blocked.path().join("a-file");
    std::fs::write(&file, "not a directory\n").unwrap();
    let out = file.join("out");
    let failed = Xbuild::new().run(&[
        "build",
        project.path().to_str().unwrap(),
        "--target",
        FIXTURE_TARGET,
        "--out",
        out.to_str().unwrap(),
        "--remote",
        &remote,
        "--sign",
        secret.to_str().unwrap(),
    ]);
    assert!(!failed.status.success(), "{failed}");
    assert!(failed.stderr.contains("a-file"), "{failed}");
    assert!(failed.stderr.contains("pushed to"), "{failed}");

    let b = Xbuild::new().build_with(
        project.path(),
        &[
            "--remote",
            &remote,
            "--trust",
            &public,
            "--require-hits=all",
        ],
    );
    let report = b.success().json();
    assert_eq!(summary(&report, "built"), 0, "{b}");
    assert_eq!(summary(&report, "downloaded"), 0, "{b}");
    assert!(summary(&report, "remote") > 0, "{b}");
}
