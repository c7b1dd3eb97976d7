//! Tests of the download client: retry classes, redaction, URL checks,
//! redirects and `file://` copies.

use super::*;

#[test]
fn redact_hides_credentials_only() {
    assert_eq!(
        redact("http://user:secret@example.invalid/debian"),
        "http://***@example.invalid/debian"
    );
    assert_eq!(
        redact("https://u:p@host:8080/a@b"),
        "https://***@host:8080/a@b"
    );
    assert_eq!(redact("http://token@host/"), "http://***@host/");
    assert_eq!(
        redact("http://example.invalid/a@b"),
        "http://example.invalid/a@b"
    );
    assert_eq!(redact("not a url"), "not a url");
}

#[test]
fn without_credentials_drops_the_user_information() {
    assert_eq!(
        without_credentials("http://user:secret@example.invalid/debian"),
        "http://example.invalid/debian"
    );
    assert_eq!(
        without_credentials("https://u:p@host:8080/a@b"),
        "https://host:8080/a@b"
    );
    assert_eq!(without_credentials("http://host/x"), "http://host/x");
    assert_eq!(without_credentials("file:///srv/m"), "file:///srv/m");
}

#[test]
fn redact_ends_the_authority_at_a_query_or_fragment() {
    // An `@` after `?` or `#` is not user information: nothing to hide,
    // and nothing of the host may be cut away.
    assert_eq!(
        redact("http://host.invalid?next=a@b"),
        "http://host.invalid?next=a@b"
    );
    assert_eq!(redact("http://host.invalid#a@b"), "http://host.invalid#a@b");
    assert_eq!(
        redact("http://u:p@host.invalid?next=a@b"),
        "http://***@host.invalid?next=a@b"
    );
    assert_eq!(
        redact("http://u:p@host.invalid#frag@x"),
        "http://***@host.invalid#frag@x"
    );
}

#[test]
fn urls_need_a_known_scheme_and_a_host_or_an_absolute_path() {
    for good in [
        "http://host.invalid/debian",
        "https://u:p@host.invalid:8443/debian",
        "http://127.0.0.1:8080",
        "file:///srv/mirror/debian",
        "file://localhost/srv/mirror",
    ] {
        assert_eq!(check_url(good), Ok(()), "{good}");
    }
    for (bad, expected) in [
        ("", "the URL is empty"),
        ("notaurl", "`notaurl` is not a URL"),
        ("ftp://host.invalid/debian", "uses `ftp`"),
        ("http:///debian", "`http:///debian` has no host"),
        ("http://user:pw@/debian", "`http://***@/debian` has no host"),
        ("http://:80/debian", "has no host"),
        ("http://host.invalid/de bian", "whitespace"),
        ("file://server/share", "names host `server`"),
        ("file:relative/dir", "is not a URL"),
    ] {
        let error = check_url(bad).expect_err(bad);
        assert!(error.contains(expected), "{bad}: {error}");
        assert!(!error.contains("pw@"), "{error}");
    }
}

#[test]
fn redirects_stay_on_http_and_never_downgrade_from_https() {
    let http = reqwest::Url::parse("http://a.invalid/debian/x").unwrap();
    let https = reqwest::Url::parse("https://a.invalid/debian/x").unwrap();
    assert_eq!(
        redirect_target(&http, "/mirror/x").unwrap().as_str(),
        "http://a.invalid/mirror/x"
    );
    assert_eq!(
        redirect_target(&http, "https://b.invalid/x")
            .unwrap()
            .as_str(),
        "https://b.invalid/x"
    );
    assert!(redirect_target(&https, "http://b.invalid/x").is_err());
    assert!(redirect_target(&http, "file:///etc/passwd").is_err());
    assert!(redirect_target(&http, "ftp://b.invalid/x").is_err());
}

#[test]
fn transient_statuses_are_retried_and_client_errors_are_not() {
    let status = |status| HttpError::Status {
        url: "u".into(),
        redirected_from: None,
        status,
    };
    assert!(status(503).is_transient());
    assert!(!status(404).is_transient());
    assert!(status(404).is_not_found());
}

#[test]
fn short_transfers_and_stalls_are_transient_and_writes_are_local() {
    let short = HttpError::Short {
        url: "u".into(),
        redirected_from: None,
        expected: 10,
        received: 3,
    };
    assert!(short.is_transient());
    assert!(!short.is_local());
    let stalled = HttpError::Stalled {
        url: "u".into(),
        redirected_from: None,
        idle: Duration::from_millis(500),
    };
    assert!(stalled.is_transient());
    assert_eq!(stalled.to_string(), "u: no data for 0.5 s");
    let write = HttpError::Write {
        url: "u".into(),
        path: "/cache/tmp/x".into(),
        source: io::Error::from_raw_os_error(28),
    };
    assert!(!write.is_transient());
    assert!(write.is_local());
    assert!(write.hint().unwrap().contains("/cache/tmp is full"));
}

#[test]
fn file_urls_are_copied_hashed_and_missing_files_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("Packages");
    std::fs::write(&source, b"Package: x\n").unwrap();
    let dest = dir.path().join("copy");
    let client = HttpClient::new().unwrap();
    let url = reqwest::Url::from_file_path(&source).unwrap().to_string();
    let request = Download {
        url: &url,
        dest: &dest,
        validators: None,
        expected_size: Some(11),
        label: "Packages",
    };
    let reporter = crate::progress::SilentReporter;
    match client.download(&request, &reporter).unwrap() {
        Fetched::Body { digest, size, .. } => {
            assert_eq!(digest, Sha256Digest::of(b"Package: x\n"));
            assert_eq!(size, 11);
        }
        Fetched::NotModified => panic!("a file is never 'not modified'"),
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"Package: x\n");
    let missing = format!("{url}.gone");
    let error = client
        .download(
            &Download {
                url: &missing,
                ..request
            },
            &reporter,
        )
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert!(error.is_local());
}
