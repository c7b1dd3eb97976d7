use super::*;
use std::process::Command;
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

const RELEASE_TEXT: &str = "Origin: Test\nLabel: Test Archive \nSuite: testing\nCodename: trixie\n\
Date: Sat, 10 May 2025 09:01:43 UTC\nValid-Until: Sat, 17 May 2025 11:01:43 +0200\nAcquire-By-Hash: yes\n\
Architectures: amd64 arm64\nComponents: main contrib\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 main/Release\n\
SHA256:\n 2ddb1737692e8c45c53e8d57c0ce4cd21c78c5703b830c3226b1423566a06c00  8689464 main/binary-arm64/Packages.xz\n\
\x20e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855        0 main/binary-arm64/Release\n";
/// 2025-05-10 09:01:43 UTC (the Date above); Valid-Until is 7 days later.
const RELEASE_DATE: u64 = 1_746_867_703;

/// Text exercising the cleartext rules: dash-escaping, trailing
/// whitespace, CRLF, an empty line and no final line break.
const DASHES_TEXT: &str = "-----BEGIN PGP SIGNATURE-----\n- dash\ntrailing \t\r\n\n-\nlast";

/// Keys and signed files made once per test run with the real `gpg`.
struct Fixtures {
    rsa_binary: Vec<u8>,
    ed25519_armored: Vec<u8>,
    rsa: String,
    ed25519_primary: String,
    ed25519_subkey: String,
    stranger: String,
    signed_by_rsa: Vec<u8>,
    signed_by_ed25519: Vec<u8>,
    signed_by_stranger: Vec<u8>,
    signed_by_stranger_and_rsa: Vec<u8>,
    signed_bad_date: Vec<u8>,
    signed_dashes: Vec<u8>,
}

fn run(program: &str, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .arg("--homedir")
        .arg(home)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} (is GnuPG installed?): {error}"))
}

fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["--batch", "--pinentry-mode", "loopback", "--passphrase", ""];
    all.extend_from_slice(args);
    let output = run("gpg", home, &all);
    assert!(
        output.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn fingerprints_of(home: &Path, user: &str) -> Vec<String> {
    let listing = String::from_utf8(gpg(home, &["--with-colons", "--list-keys", user])).unwrap();
    listing
        .lines()
        .filter_map(|line| line.strip_prefix("fpr:"))
        .map(|rest| rest.trim_matches(':').to_string())
        .collect()
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        gpg(
            home,
            &[
                "--quick-gen-key",
                "RSA <rsa@example.invalid>",
                "rsa3072",
                "sign",
                "never",
            ],
        );
        gpg(
            home,
            &[
                "--quick-gen-key",
                "Ed <ed@example.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
        );
        gpg(
            home,
            &[
                "--quick-gen-key",
                "Stranger <stranger@example.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
        );
        let rsa = fingerprints_of(home, "rsa@example.invalid").remove(0);
        let ed25519_primary = fingerprints_of(home, "ed@example.invalid").remove(0);
        let stranger = fingerprints_of(home, "stranger@example.invalid").remove(0);
        gpg(
            home,
            &["--quick-add-key", &ed25519_primary, "ed25519", "sign", "1y"],
        );
        let ed25519_subkey = fingerprints_of(home, "ed@example.invalid").remove(1);
        let release = home.join("Release");
        fs_err::write(&release, RELEASE_TEXT).unwrap();
        let bad_date = home.join("BadDate");
        fs_err::write(
            &bad_date,
            RELEASE_TEXT.replace("Sat, 10 May", "Sat, 32 May"),
        )
        .unwrap();
        let dashes = home.join("Dashes");
        fs_err::write(&dashes, DASHES_TEXT).unwrap();
        let sign = |signers: &[&str], file: &Path| {
            let mut args = Vec::new();
            for signer in signers {
                args.extend(["--local-user", signer]);
            }
            args.extend(["--digest-algo", "SHA256", "--clearsign", "--output", "-"]);
            args.push(file.to_str().unwrap());
            gpg(home, &args)
        };
        let fixtures = Fixtures {
            rsa_binary: gpg(home, &["--export", &rsa]),
            ed25519_armored: gpg(home, &["--export", "--armor", &ed25519_primary]),
            signed_by_rsa: sign(&[&rsa], &release),
            signed_by_ed25519: sign(&[&ed25519_primary], &release),
            signed_by_stranger: sign(&[&stranger], &release),
            signed_by_stranger_and_rsa: sign(&[&stranger, &rsa], &release),
            signed_bad_date: sign(&[&rsa], &bad_date),
            signed_dashes: sign(&[&rsa], &dashes),
            rsa,
            ed25519_primary,
            ed25519_subkey,
            stranger,
        };
        run("gpgconf", home, &["--kill", "all"]);
        fixtures
    })
}

/// A keyring file holding `bytes`, in its own temporary directory.
fn keyring_file(bytes: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(name);
    fs_err::write(&path, bytes).unwrap();
    (directory, path)
}

fn test_keyring() -> (Vec<tempfile::TempDir>, Keyring) {
    let (rsa_directory, rsa_path) = keyring_file(&fixtures().rsa_binary, "rsa.gpg");
    let (ed_directory, ed_path) = keyring_file(&fixtures().ed25519_armored, "ed.asc");
    let keyring = Keyring::load_all(&[rsa_path, ed_path]).unwrap();
    (vec![rsa_directory, ed_directory], keyring)
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Changes one character inside the signed text.
fn tamper(signed: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(signed.to_vec()).unwrap();
    assert!(text.contains("Suite: testing\n"));
    text.replacen("Suite: testing\n", "Suite: testinG\n", 1)
        .into_bytes()
}

/// Runs `gpgv` on `signed` with the binary keyring `keyring`.
fn gpgv_accepts(signed: &[u8], keyring: &[u8]) -> bool {
    let home = tempfile::tempdir().unwrap();
    let keyring_path = home.path().join("keyring.gpg");
    let signed_path = home.path().join("InRelease");
    fs_err::write(&keyring_path, keyring).unwrap();
    fs_err::write(&signed_path, signed).unwrap();
    let arguments = [
        "--keyring",
        keyring_path.to_str().unwrap(),
        signed_path.to_str().unwrap(),
    ];
    run("gpgv", home.path(), &arguments).status.success()
}

#[test]
fn valid_signatures_verify_and_fields_are_parsed() {
    let fixtures = fixtures();
    let (_directories, keyring) = test_keyring();
    assert_eq!(
        keyring.fingerprints(),
        vec![fixtures.rsa.clone(), fixtures.ed25519_primary.clone()]
    );
    let release = verify_inrelease(
        &fixtures.signed_by_rsa,
        &keyring,
        "test://rsa",
        at(RELEASE_DATE),
    )
    .unwrap();
    assert_eq!(release.signer, fixtures.rsa);
    assert_eq!(release.origin.as_deref(), Some("Test"));
    assert_eq!(release.label.as_deref(), Some("Test Archive"));
    assert_eq!(release.suite.as_deref(), Some("testing"));
    assert_eq!(release.codename.as_deref(), Some("trixie"));
    assert_eq!(release.date, Some(at(RELEASE_DATE)));
    assert_eq!(release.valid_until, Some(at(RELEASE_DATE + 7 * 86_400)));
    assert_eq!(release.architectures, ["amd64", "arm64"]);
    assert_eq!(release.components, ["main", "contrib"]);
    assert!(release.acquire_by_hash);
    assert_eq!(release.sha256.len(), 2);
    let packages = &release.sha256["main/binary-arm64/Packages.xz"];
    assert_eq!(packages.size, 8_689_464);
    assert_eq!(
        packages.digest.hex(),
        "2ddb1737692e8c45c53e8d57c0ce4cd21c78c5703b830c3226b1423566a06c00"
    );

    // The ed25519 key signs with its subkey; the keyring was armored.
    let release = verify_inrelease(
        &fixtures.signed_by_ed25519,
        &keyring,
        "test://ed",
        at(RELEASE_DATE),
    )
    .unwrap();
    assert_eq!(release.signer, fixtures.ed25519_subkey);
    assert_eq!(release.signer_primary, fixtures.ed25519_primary);

    // Any good signature is enough, even next to one from an unknown key.
    let both = &fixtures.signed_by_stranger_and_rsa;
    assert_eq!(
        verify_inrelease(both, &keyring, "test://both", at(RELEASE_DATE))
            .unwrap()
            .signer,
        fixtures.rsa
    );

    // Line endings are canonicalised by the cleartext framework.
    let crlf = String::from_utf8(fixtures.signed_by_rsa.clone())
        .unwrap()
        .replace('\n', "\r\n");
    assert!(verify_inrelease(crlf.as_bytes(), &keyring, "test://crlf", at(RELEASE_DATE)).is_ok());
}

#[test]
fn cleartext_canonical_text_matches_rpgp_and_gpg() {
    let fixtures = fixtures();
    let (_directories, keyring) = test_keyring();
    let text = String::from_utf8(fixtures.signed_dashes.clone()).unwrap();
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    for variant in [&text, &crlf] {
        let ours = open_cleartext(variant, "test://dashes").unwrap();
        let (theirs, _) = pgp::composed::CleartextSignedMessage::from_string(variant).unwrap();
        assert_eq!(ours.signed_text, theirs.signed_text());
        assert_eq!(ours.first_line, 4);
        let signer = find_good_signer(&ours.signatures, &ours.signed_text, &keyring, "", at(0));
        assert_eq!(format!("{:X}", signer.unwrap().fingerprint), fixtures.rsa);
    }
    let unescaped = text.replacen("- - dash", "-- dash", 1);
    let error = open_cleartext(&unescaped, "test://escape").unwrap_err();
    assert!(
        matches!(error, ReleaseError::Malformed { line: 5, .. }),
        "{error:?}"
    );
    let error = open_cleartext(&format!("junk\n{text}"), "test://junk").unwrap_err();
    assert!(
        matches!(error, ReleaseError::Malformed { line: 1, .. }),
        "{error:?}"
    );
    let error = open_cleartext(&format!("{text}junk\n"), "test://trailing").unwrap_err();
    assert!(matches!(error, ReleaseError::Malformed { .. }), "{error:?}");
}

#[test]
fn tampered_text_is_a_bad_signature_for_gpgv_too() {
    let fixtures = fixtures();
    let (_directories, keyring) = test_keyring();
    let tampered = tamper(&fixtures.signed_by_rsa);
    let error =
        verify_inrelease(&tampered, &keyring, "test://tampered", at(RELEASE_DATE)).unwrap_err();
    assert!(
        matches!(&error, ReleaseError::BadSignature { fingerprints, .. } if fingerprints == std::slice::from_ref(&fixtures.rsa))
    );
    assert!(error.to_string().contains("test://tampered"), "{error}");
    assert!(gpgv_accepts(&fixtures.signed_by_rsa, &fixtures.rsa_binary));
    assert!(!gpgv_accepts(&tampered, &fixtures.rsa_binary));
}

#[test]
fn unknown_key_unsigned_and_unreadable_are_rejected() {
    let fixtures = fixtures();
    let (_directories, keyring) = test_keyring();
    let error = verify_inrelease(
        &fixtures.signed_by_stranger,
        &keyring,
        "test://stranger",
        at(RELEASE_DATE),
    )
    .unwrap_err();
    let ReleaseError::UnknownKey {
        issuers, sources, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(issuers, std::slice::from_ref(&fixtures.stranger));
    assert_eq!(sources, keyring.sources());
    assert!(error.to_string().contains("rsa.gpg"), "{error}");

    let error = verify_inrelease(
        RELEASE_TEXT.as_bytes(),
        &keyring,
        "test://plain",
        at(RELEASE_DATE),
    )
    .unwrap_err();
    assert!(matches!(error, ReleaseError::NotSigned { .. }), "{error:?}");

    let text = String::from_utf8(fixtures.signed_by_rsa.clone()).unwrap();
    let truncated = &text[..text.find("-----BEGIN PGP SIGNATURE-----").unwrap() + 40];
    let error = verify_inrelease(
        truncated.as_bytes(),
        &keyring,
        "test://cut",
        at(RELEASE_DATE),
    )
    .unwrap_err();
    assert!(
        matches!(error, ReleaseError::UnreadableSignature { .. }),
        "{error:?}"
    );
}

#[test]
fn valid_until_and_key_expiry_are_enforced() {
    let fixtures = fixtures();
    let (_directories, keyring) = test_keyring();
    let valid_until = RELEASE_DATE + 7 * 86_400;
    assert!(
        verify_inrelease(
            &fixtures.signed_by_rsa,
            &keyring,
            "test://a",
            at(valid_until - 1)
        )
        .is_ok()
    );
    let error = verify_inrelease(
        &fixtures.signed_by_rsa,
        &keyring,
        "test://a",
        at(valid_until + 1),
    )
    .unwrap_err();
    assert!(
        matches!(error, ReleaseError::Expired { valid_until: until, .. } if until == at(valid_until))
    );
    assert!(
        error.to_string().contains("Sat, 17 May 2025 09:01:43 UTC"),
        "{error}"
    );

    // The ed25519 signing subkey was made to expire after one year.
    let later = SystemTime::now() + Duration::from_secs(2 * 366 * 86_400);
    let error =
        verify_inrelease(&fixtures.signed_by_ed25519, &keyring, "test://ed", later).unwrap_err();
    assert!(
        matches!(&error, ReleaseError::KeyExpired { fingerprint, .. } if fingerprint == &fixtures.ed25519_subkey)
    );
}

#[test]
fn malformed_fields_report_the_inrelease_line() {
    let fixtures = fixtures();
    let (_directories, keyring) = test_keyring();
    let error = verify_inrelease(
        &fixtures.signed_bad_date,
        &keyring,
        "test://date",
        at(RELEASE_DATE),
    )
    .unwrap_err();
    let text = String::from_utf8(fixtures.signed_bad_date.clone()).unwrap();
    let date_line = 1 + text
        .lines()
        .position(|line| line.starts_with("Date:"))
        .unwrap();
    assert!(
        matches!(error, ReleaseError::Malformed { line, .. } if line == date_line),
        "{error:?}"
    );

    let bad_digest = RELEASE_TEXT.replace(" 2ddb17", " zzzz17");
    let error = parse_release(&bad_digest, "test://digest", 1).unwrap_err();
    assert!(
        matches!(error, ReleaseError::Malformed { line: 13, .. }),
        "{error:?}"
    );
    let error = parse_release("Origin: Test\n", "test://none", 1).unwrap_err();
    assert!(error.to_string().contains("no SHA256 field"), "{error}");
    let error = parse_release("Origin: Test\n\nSuite: x\n", "test://two", 1).unwrap_err();
    assert!(
        matches!(error, ReleaseError::Malformed { line: 3, .. }),
        "{error:?}"
    );
}

#[test]
fn keyring_errors_name_the_file() {
    let missing = Path::new("/nonexistent/keyring.gpg");
    let error = Keyring::load(missing).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/keyring.gpg"),
        "{error}"
    );
    let (_directory, keybox) = keyring_file(b"\0\0\0\x20\x01\x01\0\0KBXf\0\0\0\0", "pubring.kbx");
    let error = Keyring::load(&keybox).unwrap_err();
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(source.contains("gpg --export"), "{source}");
    let (_directory, empty) = keyring_file(b"", "empty.gpg");
    assert!(matches!(
        Keyring::load(&empty),
        Err(ReleaseError::Keyring { .. })
    ));
    fn assert_thread_safe<T: Send + Sync + 'static>() {}
    assert_thread_safe::<ReleaseError>();
}

#[test]
fn release_dates_parse_and_format() {
    let expected = at(RELEASE_DATE);
    for text in [
        "Sat, 10 May 2025 09:01:43 UTC",
        "Sat, 10 May 2025 09:01:43 GMT",
        "Sat, 10 May 2025 09:01:43 +0000",
        "10 May 2025 11:01:43 +0200",
        "Sat, 10 May 2025 04:01:43 -0500",
    ] {
        assert_eq!(parse_release_date(text), Some(expected), "{text}");
    }
    for text in [
        "Sat, 29 Feb 2025 09:01:43 UTC",
        "Sat, 10 Mai 2025 09:01:43 UTC",
        "10 May 2025 24:00:00 UTC",
        "10 May 2025 09:01:43 CEST",
        "",
    ] {
        assert_eq!(parse_release_date(text), None, "{text}");
    }
    assert_eq!(
        parse_release_date("Thu, 29 Feb 2024 00:00:00 UTC"),
        Some(at(1_709_164_800))
    );
    assert_eq!(
        format_release_date(expected),
        "Sat, 10 May 2025 09:01:43 UTC"
    );
    assert_eq!(
        format_release_date(at(1_709_164_800)),
        "Thu, 29 Feb 2024 00:00:00 UTC"
    );
}

#[test]
fn debian_inrelease_verifies_with_archive_keyring_host_lists() {
    let keyring_path = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
    let lists = fs_err::read_dir("/var/lib/apt/lists")
        .into_iter()
        .flatten()
        .flatten();
    let inrelease = lists.map(|entry| entry.path()).find(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with("_dists_bookworm_InRelease"))
    });
    let (Some(inrelease), true) = (inrelease, keyring_path.exists()) else {
        println!(
            "note: skipped, no bookworm InRelease in /var/lib/apt/lists or no Debian archive keyring"
        );
        return;
    };
    let started = std::time::Instant::now();
    let keyring = Keyring::load(keyring_path).unwrap();
    let loaded = started.elapsed();
    let bytes = fs_err::read(&inrelease).unwrap();
    let started = std::time::Instant::now();
    let release = verify_inrelease(
        &bytes,
        &keyring,
        "host://bookworm/InRelease",
        SystemTime::now(),
    )
    .unwrap();
    let verified = started.elapsed();
    println!(
        "keyring load: {loaded:?}; InRelease ({} bytes) verify + parse: {verified:?}",
        bytes.len()
    );
    assert_eq!(release.codename.as_deref(), Some("bookworm"));
    assert!(release.sha256.contains_key("main/binary-arm64/Packages.xz"));
    assert!(keyring.fingerprints().contains(&release.signer_primary));

    let text = String::from_utf8(bytes).unwrap();
    let tampered = text.replacen("Codename: bookworm", "Codename: bookwork", 1);
    let error = verify_inrelease(
        tampered.as_bytes(),
        &keyring,
        "host://tampered",
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(
        matches!(error, ReleaseError::BadSignature { .. }),
        "{error:?}"
    );
}
