//! No secret leaks, against real servers on 127.0.0.1 (the fixture archive,
//! nginx with WebDAV behind Basic authentication and behind a bearer token,
//! Debian's docker-registry with htpasswd): a mirror password, a netrc
//! password, a bearer token, a registry password (docker config) and the
//! bytes of a signing key are given to builds, prewarms, plans, pushes and
//! failing runs, and none of them is found in any output, report, cache
//! file, remote file or registry file afterwards.

mod support;

#[path = "../cache/tests/remote/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::path::Path;

use base64::Engine as _;
use servers::{Nginx, NginxOptions, Registry};
use support::archive::ArchiveBuilder;
use support::files::all_files;
use support::server::Server;
use support::xbuild::{
    FIXTURE_TARGET, Project, RunOutput, Xbuild, fixture_manifest, keygen, temp_dir,
};

const MIRROR_PASSWORD: &str = "mirror-pw-7d1c9e";
const NETRC_PASSWORD: &str = "netrc-pw-52be0a";
const BEARER_TOKEN: &str = "bearer-tok-e93f14";
/// The registry's htpasswd password (`ci`), see `servers::REGISTRY_HTPASSWD`.
const REGISTRY_PASSWORD: &str = "s3cret";

/// Every byte string that must never be seen: the secrets, their base64
/// forms, and the signing key's secret half (raw and base64).
fn needles(secret_key_file: &Path) -> Vec<(String, Vec<u8>)> {
    let base64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let mut needles: Vec<(String, Vec<u8>)> = [
        MIRROR_PASSWORD,
        NETRC_PASSWORD,
        BEARER_TOKEN,
        &format!("ci:{REGISTRY_PASSWORD}"),
    ]
    .iter()
    .flat_map(|secret| {
        [
            (secret.to_string(), secret.as_bytes().to_vec()),
            (format!("base64 of {secret}"), base64(secret).into_bytes()),
        ]
    })
    .collect();
    let text = std::fs::read_to_string(secret_key_file).unwrap();
    let encoded = text.trim().split_once(':').unwrap().1.to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .unwrap();
    // The first 40 characters encode only the secret half.
    needles.push((
        "the secret key (base64)".into(),
        encoded.as_bytes()[..40].to_vec(),
    ));
    needles.push(("the secret key (raw)".into(), bytes[..32].to_vec()));
    needles
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

struct Check {
    needles: Vec<(String, Vec<u8>)>,
    seen: usize,
}

impl Check {
    fn output(&mut self, what: &str, run: &RunOutput) {
        for (text, stream) in [(&run.stdout, "stdout"), (&run.stderr, "stderr")] {
            for (name, needle) in &self.needles {
                assert!(
                    !find(text.as_bytes(), needle),
                    "{what} printed {name} on {stream}:\n{text}"
                );
            }
        }
        self.seen += 1;
    }

    fn tree(&mut self, what: &str, dir: &Path) {
        for file in all_files(dir) {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            for (name, needle) in &self.needles {
                assert!(
                    !find(&bytes, needle),
                    "{what}: {} holds {name}",
                    file.display()
                );
            }
            self.seen += 1;
        }
    }
}

#[test]
fn no_secret_is_printed_stored_or_uploaded() {
    let archive = ArchiveBuilder::standard().build();
    let server = Server::serve(archive.root());
    let mirror = server
        .url("debian")
        .replace("http://", &format!("http://builder:{MIRROR_PASSWORD}@"));
    let project = Project::new(&fixture_manifest(&mirror, &["hello", "virt-app"], ""));
    std::fs::copy(&archive.keyring, project.path().join("fixture-key.gpg")).unwrap();

    let basic = Nginx::start(NginxOptions {
        basic: Some(("ci".into(), NETRC_PASSWORD.into())),
        ..Default::default()
    });
    let bearer = Nginx::start(NginxOptions {
        bearer: Some(BEARER_TOKEN.into()),
        ..Default::default()
    });
    let registry = Registry::start_with(true);
    let registry_host = format!("127.0.0.1:{}", registry.port);

    let home = temp_dir("xbuild-secrets-home-");
    let netrc = home.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine 127.0.0.1 login ci password {NETRC_PASSWORD}\n"),
    )
    .unwrap();
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci:{REGISTRY_PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{registry_host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let (secret, public) = keygen(home.path(), "ci");
    let mut check = Check {
        needles: needles(&secret),
        seen: 0,
    };

    let cache = temp_dir("xbuild-secrets-cache-");
    // The token is sent to every http(s) remote, so the two remotes are
    // written by two runs: netrc for one, the token for the other.
    let machine = Xbuild::new()
        .with_cache_dir(cache.path())
        .with_env("NETRC", netrc.to_str().unwrap())
        .with_env("DOCKER_CONFIG", docker.to_str().unwrap());
    let token_machine = Xbuild::new()
        .with_cache_dir(cache.path())
        .with_env("XBUILD_REMOTE_TOKEN", BEARER_TOKEN);
    let basic_remote = format!("http://127.0.0.1:{}/xb", basic.port);
    let bearer_remote = format!("http://127.0.0.1:{}/xb", bearer.port);
    let out = temp_dir("xbuild-secrets-out-");
    let project_dir = project.path().to_str().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let pushed = format!("{registry_host}/team/app:1");
    let secret_path = secret.to_str().unwrap();

    // A build that signs, uploads and pushes; one that uploads with the
    // token.
    let built = machine.run(&[
        "build",
        project_dir,
        "--target",
        FIXTURE_TARGET,
        "--out",
        out_dir,
        "--json",
        "--remote",
        &basic_remote,
        "--sign",
        secret_path,
        "--push",
        &pushed,
    ]);
    built.success();
    assert!(built.stderr.contains("pushed to"), "{built}");
    check.output("build --push", &built);
    let prewarm_args = |remote| {
        vec![
            "cache",
            "prewarm",
            project_dir,
            "--target",
            FIXTURE_TARGET,
            "--remote",
            remote,
            "--sign",
            secret_path,
            "--json",
        ]
    };
    let tokened = token_machine.run(&prewarm_args(&bearer_remote));
    tokened.success();
    check.output("prewarm with a bearer token", &tokened);
    // Human output, a plan in both forms, a prewarm, a push again.
    for args in [
        vec![
            "build",
            project_dir,
            "--target",
            FIXTURE_TARGET,
            "--out",
            out_dir,
        ],
        vec!["plan", project_dir, "--target", FIXTURE_TARGET, "--explain"],
        vec!["plan", project_dir, "--target", FIXTURE_TARGET, "--json"],
        prewarm_args(&basic_remote),
        vec!["push", project_dir, &pushed, "--out", out_dir],
        vec!["cache", "stats", "--json"],
    ] {
        let run = machine.run(&args);
        run.success();
        check.output(&args.join(" "), &run);
    }
    // A second machine that only reads, trusting the key.
    let reader = Xbuild::new().with_env("XBUILD_REMOTE_TOKEN", BEARER_TOKEN);
    let read = reader.run(&[
        "build",
        project_dir,
        "--target",
        FIXTURE_TARGET,
        "--out",
        out_dir,
        "--json",
        "--remote",
        &bearer_remote,
        "--trust",
        &public,
    ]);
    assert!(
        read.success().json()["summary"]["remote"].as_u64().unwrap() > 0,
        "{read}"
    );
    check.output("a reading machine", &read);
    // Failing runs: a wrong netrc password, a registry refusing the push,
    // a mirror that is down.
    let wrong = home.path().join("wrong-netrc");
    std::fs::write(
        &wrong,
        format!("machine 127.0.0.1 login ci password {NETRC_PASSWORD}x\n"),
    )
    .unwrap();
    let refused_upload = Xbuild::new()
        .with_env("NETRC", wrong.to_str().unwrap())
        .run(&prewarm_args(&basic_remote));
    assert_ne!(refused_upload.status.code(), Some(0), "{refused_upload}");
    check.output("prewarm with a wrong netrc password", &refused_upload);
    let refused_push = Xbuild::new().run(&["push", project_dir, &pushed, "--out", out_dir]);
    assert_eq!(refused_push.status.code(), Some(9), "{refused_push}");
    check.output("push without credentials", &refused_push);
    drop(server);
    let offline = machine.run(&[
        "build",
        project_dir,
        "--target",
        FIXTURE_TARGET,
        "--out",
        out_dir,
        "--refresh",
    ]);
    assert_ne!(offline.status.code(), Some(0));
    check.output("a build whose mirror is down", &offline);

    // Nothing kept anywhere: the caches, the outputs, both remotes, the
    // registry's storage.
    check.tree("the cache", cache.path());
    check.tree("the reading machine's cache", reader.cache_dir());
    check.tree("the outputs", out.path());
    check.tree("the Basic-auth remote", &basic.root);
    check.tree("the bearer remote", &bearer.root);
    check.tree("the registry", &registry.storage);
    assert!(
        check.seen > 50,
        "only {} outputs and files were looked at",
        check.seen
    );
}
