//! Credentials: netrc and a bearer token against nginx, a Docker config
//! against a registry asking for Basic authentication, and the Bearer
//! token flow against a small token-issuing server.

use crate::servers::{Nginx, NginxOptions, Registry};
use base64::Engine as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use xbuild_cache::backend::{self, BlobRef, RemoteConfig, RemoteError};
use xbuild_cache::hash::Sha256Digest;

#[test]
fn nginx_with_basic_auth_takes_the_login_from_netrc() {
    let nginx = Nginx::start(NginxOptions {
        basic: Some(("ci".into(), "pa55word".into())),
        ..NginxOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        "machine 127.0.0.1\n  login ci\n  password pa55word\n",
    )
    .unwrap();
    let config = RemoteConfig::default().with_netrc(&netrc);
    let remote = backend::open(&nginx.url("xb"), &config).unwrap();
    remote.put_pointer("latest", b"v1").unwrap();
    assert_eq!(remote.get_pointer("latest").unwrap().unwrap(), b"v1");

    let anonymous = backend::open(&nginx.url("xb"), &RemoteConfig::default()).unwrap();
    let error = anonymous.get_pointer("latest").unwrap_err();
    assert!(
        matches!(error, RemoteError::Status { status: 401, .. }),
        "{error}"
    );
    assert!(error.hint().unwrap().contains("netrc"));
    std::fs::write(&netrc, "machine 127.0.0.1 login ci password wrong\n").unwrap();
    let wrong = backend::open(&nginx.url("xb"), &config).unwrap();
    let error = wrong.put_pointer("latest", b"v2").unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.contains("401"), "{text}");
    assert!(
        !text.contains("wrong") && !text.contains("pa55word"),
        "a password was shown: {text}"
    );
}

#[test]
fn nginx_with_a_bearer_token_takes_it_from_the_config() {
    let nginx = Nginx::start(NginxOptions {
        bearer: Some("t0ken".into()),
        ..NginxOptions::default()
    });
    let config = RemoteConfig::default().with_token("t0ken");
    let remote = backend::open(&nginx.url("xb"), &config).unwrap();
    remote.put_pointer("latest", b"v1").unwrap();
    assert_eq!(remote.get_pointer("latest").unwrap().unwrap(), b"v1");
    let wrong = backend::open(
        &nginx.url("xb"),
        &RemoteConfig::default().with_token("other"),
    )
    .unwrap();
    let error = wrong.get_pointer("latest").unwrap_err();
    assert!(
        matches!(error, RemoteError::Status { status: 401, .. }),
        "{error}"
    );
    assert!(!format!("{error:?}").contains("other"));
}

#[test]
fn a_registry_asking_for_basic_auth_gets_the_docker_config_login() {
    let registry = Registry::start_with(true);
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
    std::fs::write(
        dir.path().join("config.json"),
        format!(
            r#"{{"auths": {{"127.0.0.1:{}": {{"auth": "{auth}"}}}}}}"#,
            registry.port
        ),
    )
    .unwrap();
    let config = RemoteConfig::default().with_docker_config_dir(dir.path());
    let remote = backend::open(&registry.url("team/xb"), &config).unwrap();
    let blob_path = dir.path().join("blob");
    std::fs::write(&blob_path, b"layer").unwrap();
    let blob = BlobRef::new(Sha256Digest::of(b"layer"), 5);
    remote.put_blob(&blob, &blob_path).unwrap();
    let key = Sha256Digest::of(b"key");
    remote.put_entry("layer", &key, b"{}", &[blob]).unwrap();
    assert_eq!(remote.get_entry("layer", &key).unwrap().unwrap(), b"{}");

    let empty = tempfile::tempdir().unwrap();
    let anonymous = backend::open(
        &registry.url("team/xb"),
        &RemoteConfig::default().with_docker_config_dir(empty.path()),
    )
    .unwrap();
    let error = anonymous.has_blobs(&[blob.digest]).unwrap_err();
    assert!(matches!(error, RemoteError::Auth { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("none is configured for 127.0.0.1:"), "{text}");
    assert!(text.contains("docker login"), "{text}");
}

/// A registry that wants a Bearer token from its own token service, which
/// issues one for the Basic login `ci` / `s3cret`.
struct TokenRegistry {
    port: u16,
    /// The query strings the token service received.
    token_requests: Arc<Mutex<Vec<String>>>,
}

impl TokenRegistry {
    fn start() -> TokenRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let token_requests = Arc::new(Mutex::new(Vec::new()));
        let requests = token_requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let requests = requests.clone();
                std::thread::spawn(move || serve_token_registry(stream, port, &requests));
            }
        });
        TokenRegistry {
            port,
            token_requests,
        }
    }
}

fn serve_token_registry(stream: std::net::TcpStream, port: u16, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut authorization = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("authorization")
            {
                authorization = value.trim().to_owned();
            }
        }
        let target = request_line
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ci:s3cret")
        );
        let (status, headers, body) = if let Some(query) = target.strip_prefix("/token?") {
            requests.lock().unwrap().push(query.to_owned());
            if authorization == basic {
                (
                    "200 OK",
                    String::new(),
                    r#"{"token":"issued-1"}"#.to_owned(),
                )
            } else {
                ("401 Unauthorized", String::new(), String::new())
            }
        } else if authorization == "Bearer issued-1" {
            ("404 Not Found", String::new(), String::new())
        } else {
            let challenge = format!(
                "www-authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:team/xb:pull\"\r\n"
            );
            ("401 Unauthorized", challenge, String::new())
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn the_bearer_token_flow_sends_the_login_to_the_realm_and_the_token_to_the_registry() {
    let registry = TokenRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
    std::fs::write(
        dir.path().join("config.json"),
        format!(
            r#"{{"auths": {{"http://127.0.0.1:{}/v1/": {{"auth": "{auth}"}}}}}}"#,
            registry.port
        ),
    )
    .unwrap();
    let config = RemoteConfig::default().with_docker_config_dir(dir.path());
    let url = format!("oci://127.0.0.1:{}/team/xb", registry.port);
    let remote = backend::open(&url, &config).unwrap();
    let digests = [Sha256Digest::of(b"a"), Sha256Digest::of(b"b")];
    assert_eq!(remote.has_blobs(&digests).unwrap(), [false, false]);
    // The token is asked for once, by whichever concurrent check was
    // refused first, and reused.
    assert_eq!(remote.has_blobs(&digests).unwrap(), [false, false]);
    let requests = registry.token_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].contains("service=fake"), "{requests:?}");
    assert!(
        requests[0].contains("scope=repository%3Ateam%2Fxb%3Apull"),
        "{requests:?}"
    );

    let empty = tempfile::tempdir().unwrap();
    let anonymous = backend::open(
        &url,
        &RemoteConfig::default().with_docker_config_dir(empty.path()),
    )
    .unwrap();
    let error = anonymous.has_blobs(&digests[..1]).unwrap_err();
    assert!(
        error.to_string().contains("the token service refused"),
        "{error}"
    );
}
