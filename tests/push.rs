//! Pushing a build to Debian's `docker-registry` (distribution 2.8) started
//! on 127.0.0.1, against the fixture archive: `build --push` uploads every
//! blob (in chunks when they are larger than the chunk size) and the
//! manifest, and skopeo copies the image back, checking every digest; a
//! second push moves no blob; a push to another repository mounts every
//! blob; a registry with htpasswd takes the credentials of a docker config
//! file, and a wrong password is its own exit status and never printed.

mod support;

#[path = "../cache/tests/remote/servers.rs"]
#[allow(dead_code)]
mod servers;

use serde_json::Value;
use servers::Registry;
use support::archive::ArchiveBuilder;
use support::server::Server;
use support::xbuild::{FIXTURE_TARGET, Project, RunOutput, Xbuild, temp_dir};

fn push(machine: &Xbuild, project: &Project, reference: &str, extra: &[&str]) -> RunOutput {
    let mut args = vec![
        "push",
        project.path().to_str().unwrap(),
        reference,
        "--json",
    ];
    args.extend_from_slice(extra);
    machine.run(&args)
}

fn image_totals(outcome: &Value) -> (u64, u64, u64, u64) {
    let image = &outcome["images"][0];
    let field = |name: &str| image[name].as_u64().unwrap();
    (
        field("bytes_uploaded"),
        field("blobs_uploaded"),
        field("blobs_skipped"),
        field("blobs_mounted"),
    )
}

#[test]
fn build_push_then_push_again_and_to_another_repository() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");
    let registry = Registry::start();
    let host = format!("127.0.0.1:{}", registry.port);

    // Chunks of 4 KiB: every layer larger than that goes by PATCH.
    let xbuild = Xbuild::new().with_env("XBUILD_PUSH_CHUNK_BYTES", "4096");
    let reference = format!("{host}/team/app:1.0");
    let built = xbuild.run(&[
        "build",
        project.path().to_str().unwrap(),
        "--target",
        FIXTURE_TARGET,
        "--json",
        "--push",
        &reference,
    ]);
    let report = built.success().json();
    let pushed = &report["push"];
    assert_eq!(pushed["reference"], reference.as_str(), "{built}");
    let manifest_digest = report["targets"][0]["manifest_digest"].as_str().unwrap();
    assert_eq!(pushed["digest"], manifest_digest);
    let target_push = &report["targets"][0]["push"];
    assert_eq!(target_push["manifest_digest"], manifest_digest);
    let (bytes, uploaded, skipped, mounted) = image_totals(pushed);
    assert!(bytes > 4096 && uploaded > 1, "{pushed}");
    assert_eq!((skipped, mounted), (0, 0), "{pushed}");

    // An independent client reads it back, checking every digest.
    let copy = temp_dir("xbuild-copy-");
    let layout = copy.path().join("oci");
    support::run_ok(
        std::process::Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:copied", layout.display())),
    );
    let inspected = support::run_ok(
        std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}")),
    );
    let raw: Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let served = support::run_ok(
        std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    let served: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(served["Digest"], manifest_digest);
    assert_eq!(served["Architecture"], "arm64");

    // Again: nothing but the manifest moves.
    let again = push(&xbuild, &project, &reference, &[]);
    let outcome = again.success().json();
    let (bytes, uploaded, skipped, mounted) = image_totals(&outcome);
    assert_eq!((bytes, uploaded, mounted), (0, 0, 0), "{again}");
    assert!(skipped > 1, "{again}");
    assert_eq!(outcome["digest"], manifest_digest);

    // Another repository of the same registry: every blob is mounted.
    let elsewhere = format!("{host}/other/app:1.0");
    let mounted_push = push(&xbuild, &project, &elsewhere, &[]);
    let outcome = mounted_push.success().json();
    let (bytes, uploaded, _, mounted) = image_totals(&outcome);
    assert_eq!((bytes, uploaded), (0, 0), "{mounted_push}");
    assert_eq!(
        mounted as usize,
        raw["layers"].as_array().unwrap().len() + 1
    );
    support::run_ok(
        std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{elsewhere}")),
    );
}

#[test]
fn credentials_come_from_a_docker_config_and_a_wrong_password_is_exit_9() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let registry = Registry::start_with(true);
    let host = format!("127.0.0.1:{}", registry.port);
    let reference = format!("{host}/team/app:1.0");
    let docker = temp_dir("xbuild-docker-");
    let with_config = Xbuild::new().with_env("DOCKER_CONFIG", docker.path().to_str().unwrap());
    let out = project.path().join("result");
    with_config
        .build(project.path(), &out, &[FIXTURE_TARGET])
        .success();

    let config = |password: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci:{password}"));
        let text = format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#);
        std::fs::write(docker.path().join("config.json"), text).unwrap();
    };

    config("not-the-password-1234");
    let refused = push(&with_config, &project, &reference, &[]);
    assert_eq!(refused.status.code(), Some(9), "{refused}");
    assert!(refused.stderr.contains(&host), "{refused}");
    assert!(
        !refused.stderr.contains("not-the-password-1234")
            && !refused.stdout.contains("not-the-password-1234"),
        "the secret was printed: {refused}"
    );

    // No credentials at all: the same status, and a hint to log in.
    std::fs::remove_file(docker.path().join("config.json")).unwrap();
    let anonymous = push(&with_config, &project, &reference, &[]);
    assert_eq!(anonymous.status.code(), Some(9), "{anonymous}");
    assert!(anonymous.stderr.contains("login"), "{anonymous}");

    config("s3cret");
    let accepted = push(&with_config, &project, &reference, &[]);
    let outcome = accepted.success().json();
    assert!(!accepted.stderr.contains("s3cret") && !accepted.stdout.contains("s3cret"));
    assert!(outcome["images"][0]["bytes_uploaded"].as_u64().unwrap() > 0);
    // Nor does anything the cache or the output keeps (logs, reports).
    for dir in [with_config.cache_dir(), project.path()] {
        let found = std::process::Command::new("grep")
            .args(["-rl", "s3cret"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "the secret is in {}",
            String::from_utf8_lossy(&found.stdout)
        );
    }

    // podman's auth file (`podman login` writes it) comes before docker's.
    config("not-the-password-1234");
    let auth_file = docker.path().join("auth.json");
    {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
        let text = format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#);
        std::fs::write(&auth_file, text).unwrap();
    }
    let podman_login = Xbuild::new()
        .with_env("DOCKER_CONFIG", docker.path().to_str().unwrap())
        .with_env("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap());
    let again = push(
        &podman_login,
        &project,
        &format!("{host}/team/other:2"),
        &[],
    );
    again.success();
}

#[test]
fn a_bad_reference_is_refused_before_any_work() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let xbuild = Xbuild::new();
    server.clear_log();
    let refused = xbuild.run(&[
        "build",
        project.path().to_str().unwrap(),
        "--target",
        FIXTURE_TARGET,
        "--push",
        "team/app:1.0",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{refused}");
    assert!(refused.stderr.contains("names no registry"), "{refused}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

/// A TLS registry with a private CA: trusted with `--registry-ca` or
/// `SSL_CERT_FILE`, refused without, with a hint naming both.
#[test]
fn a_tls_registry_is_trusted_through_registry_ca_or_ssl_cert_file() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello"], "");
    let registry = Registry::start_tls(true);
    let host = format!("127.0.0.1:{}", registry.port);
    let docker = temp_dir("xbuild-docker-");
    {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
        let text = format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#);
        std::fs::write(docker.path().join("config.json"), text).unwrap();
    }
    let xbuild = Xbuild::new().with_env("DOCKER_CONFIG", docker.path().to_str().unwrap());
    let out = project.path().join("result");
    xbuild
        .build(project.path(), &out, &[FIXTURE_TARGET])
        .success();
    let ca = registry.ca();

    let untrusted = push(&xbuild, &project, &format!("{host}/team/app:1"), &[]);
    assert_eq!(untrusted.status.code(), Some(3), "{untrusted}");
    assert!(untrusted.stderr.contains("--registry-ca"), "{untrusted}");

    let with_flag = push(
        &xbuild,
        &project,
        &format!("{host}/team/app:1"),
        &["--registry-ca", ca.to_str().unwrap()],
    );
    let outcome = with_flag.success().json();
    assert!(outcome["images"][0]["bytes_uploaded"].as_u64().unwrap() > 0);

    let with_env = Xbuild::new()
        .with_env("DOCKER_CONFIG", docker.path().to_str().unwrap())
        .with_env("SSL_CERT_FILE", ca.to_str().unwrap());
    let again = push(&with_env, &project, &format!("{host}/team/app:2"), &[]);
    let outcome = again.success().json();
    assert_eq!(
        outcome["images"][0]["bytes_uploaded"].as_u64(),
        Some(0),
        "{again}"
    );
    // An independent client, trusting the same CA, reads it.
    let certs = temp_dir("xbuild-certs-");
    std::fs::copy(&ca, certs.path().join("ca.crt")).unwrap();
    support::run_ok(
        std::process::Command::new("skopeo")
            .args(["inspect", "--cert-dir"])
            .arg(certs.path())
            .arg("--creds")
            .arg("ci:s3cret")
            .arg(format!("docker://{host}/team/app:2")),
    );
}

/// Digest stability across machines: B, with an empty cache of its own and
/// only the shared cache A filled, builds the same image and pushes it
/// where A did: the same digest, and nothing but the manifest moves.
#[test]
fn machine_b_pushing_what_machine_a_pushed_uploads_only_the_manifest() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let project = Project::fixture(&archive, &server, &["hello", "virt-app"], "");
    let registry = Registry::start();
    let reference = format!("127.0.0.1:{}/team/app:1.0", registry.port);
    let keys = temp_dir("xbuild-keys-");
    let secret = keys.path().join("ci.secret");
    let keygen = Xbuild::new().run(&[
        "cache",
        "keygen",
        "--name",
        "ci",
        "--out",
        secret.to_str().unwrap(),
    ]);
    let public = keygen.success().stdout.trim().to_owned();
    let remote_dir = temp_dir("xbuild-remote-");
    let remote = format!("file://{}", remote_dir.path().display());
    let build_push = |machine: &Xbuild, extra: &[&str]| -> Value {
        let out = temp_dir("xbuild-out-");
        let mut args = vec![
            "build",
            project.path().to_str().unwrap(),
            "--target",
            FIXTURE_TARGET,
            "--json",
            "--out",
            out.path().to_str().unwrap(),
            "--remote",
            &remote,
            "--push",
            &reference,
        ];
        args.extend_from_slice(extra);
        machine.run(&args).success().json()
    };
    let a = build_push(&Xbuild::new(), &["--sign", secret.to_str().unwrap()]);
    let b = build_push(&Xbuild::new(), &["--trust", &public]);
    assert_eq!(b["summary"]["built"].as_u64(), Some(0), "{}", b["summary"]);
    assert_eq!(a["push"]["digest"], b["push"]["digest"]);
    let (bytes, uploaded, skipped, mounted) = image_totals(&b["push"]);
    assert_eq!((bytes, uploaded, mounted), (0, 0, 0), "{}", b["push"]);
    assert!(skipped > 1, "{}", b["push"]);
}
