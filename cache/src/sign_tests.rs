use super::*;

fn entry_parts() -> (Sha256Digest, Vec<u8>, Vec<BlobRef>) {
    let key = Sha256Digest::of(b"node key");
    let record = br#"{"outputs":["a","b"]}"#.to_vec();
    let outputs = vec![
        BlobRef::new(Sha256Digest::of(b"b"), 1),
        BlobRef::new(Sha256Digest::of(b"a"), 1),
        BlobRef::new(Sha256Digest::of(b"b"), 1),
    ];
    (key, record, outputs)
}

fn sealed(signer: &SecretKey) -> (Sha256Digest, Vec<u8>) {
    let (key, record, outputs) = entry_parts();
    let entry = EntryToSign {
        bucket: "layer",
        key: &key,
        platform: "aarch64-linux",
        record: &record,
        outputs: &outputs,
    };
    (key, seal(signer, &entry).unwrap())
}

#[test]
fn a_sealed_entry_verifies_with_the_trusted_key() {
    let signer = SecretKey::generate("team-1").unwrap();
    let (key, envelope) = sealed(&signer);
    let verified = verify(&envelope, "layer", &key, &[signer.public()]).unwrap();
    let (_, record, _) = entry_parts();
    assert_eq!(verified.record, record);
    assert_eq!(verified.signer, "team-1");
    assert_eq!(verified.platform, "aarch64-linux");
    assert_eq!(verified.outputs.len(), 2, "duplicates are dropped");
    assert!(
        verified.outputs[0] < verified.outputs[1],
        "outputs are sorted"
    );
}

#[test]
fn the_fingerprint_ignores_output_order_and_covers_every_field() {
    let (key, record, outputs) = entry_parts();
    let mut reversed = outputs.clone();
    reversed.reverse();
    let base = fingerprint("layer", &key, "aarch64-linux", &record, &outputs);
    assert_eq!(
        base,
        fingerprint("layer", &key, "aarch64-linux", &record, &reversed)
    );
    assert!(base.starts_with("xbuild-entry-v1;layer;sha256:"), "{base}");
    let changed = [
        fingerprint("build", &key, "aarch64-linux", &record, &outputs),
        fingerprint(
            "layer",
            &Sha256Digest::of(b"other"),
            "aarch64-linux",
            &record,
            &outputs,
        ),
        fingerprint("layer", &key, "armv7-linux", &record, &outputs),
        fingerprint("layer", &key, "aarch64-linux", b"{}", &outputs),
        fingerprint("layer", &key, "aarch64-linux", &record, &outputs[..1]),
        fingerprint(
            "layer",
            &key,
            "aarch64-linux",
            &record,
            &[BlobRef::new(outputs[0].digest, 2)],
        ),
    ];
    for other in changed {
        assert_ne!(base, other);
    }
}

#[test]
fn untrusted_unsigned_altered_and_misplaced_entries_are_refused() {
    let signer = SecretKey::generate("team-1").unwrap();
    let stranger = SecretKey::generate("stranger").unwrap();
    let (key, envelope) = sealed(&signer);
    let trusted = [signer.public()];

    let (_, foreign) = sealed(&stranger);
    let error = verify(&foreign, "layer", &key, &trusted).unwrap_err();
    assert!(matches!(error, TrustError::UnknownKey { .. }), "{error}");
    assert!(error.to_string().contains("stranger"), "{error}");

    // A key of a trusted name, but not the trusted key.
    let impostor = SecretKey::generate("team-1").unwrap();
    let (_, forged) = sealed(&impostor);
    let error = verify(&forged, "layer", &key, &trusted).unwrap_err();
    assert!(matches!(error, TrustError::BadSignature { .. }), "{error}");

    let mut value: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    value["signatures"] = serde_json::json!([]);
    let error = verify(
        &serde_json::to_vec(&value).unwrap(),
        "layer",
        &key,
        &trusted,
    )
    .unwrap_err();
    assert!(matches!(error, TrustError::Unsigned { .. }), "{error}");

    let mut value: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    value["record"] = serde_json::json!(BASE64.encode(b"{\"outputs\":[]}"));
    let error = verify(
        &serde_json::to_vec(&value).unwrap(),
        "layer",
        &key,
        &trusted,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the signature by team-1 does not verify"),
        "{error}"
    );

    let other_key = Sha256Digest::of(b"another node");
    let error = verify(&envelope, "layer", &other_key, &trusted).unwrap_err();
    assert!(matches!(error, TrustError::Mismatch { .. }), "{error}");
    assert!(error.to_string().contains(&key.hex()), "{error}");
    let error = verify(&envelope, "build", &key, &trusted).unwrap_err();
    assert!(matches!(error, TrustError::Mismatch { .. }), "{error}");

    let error = verify(b"<html>", "layer", &key, &trusted).unwrap_err();
    assert!(matches!(error, TrustError::Malformed { .. }), "{error}");
}

#[test]
fn pointers_round_trip_and_refuse_another_name() {
    let signer = SecretKey::generate("team-1").unwrap();
    let document = seal_pointer(&signer, "latest.cowsay", b"{\"key\":1}").unwrap();
    let opened = open_pointer(&document, "latest.cowsay", &[signer.public()]).unwrap();
    assert_eq!(opened.body, b"{\"key\":1}");
    assert_eq!(opened.signer, "team-1");
    let error = open_pointer(&document, "latest.other", &[signer.public()]).unwrap_err();
    assert!(matches!(error, TrustError::Mismatch { .. }), "{error}");
}

#[test]
fn keys_round_trip_through_their_text() {
    let (secret_text, public_text) = generate("team-1").unwrap();
    let secret = SecretKey::parse(&secret_text, Path::new("k")).unwrap();
    assert_eq!(secret.public().to_string(), public_text);
    let public: TrustedKey = public_text.parse().unwrap();
    assert_eq!(public, secret.public());
    assert!(!format!("{secret:?}").contains(&secret_text[8..20]));
}

#[test]
fn bad_public_keys_are_refused_without_showing_them() {
    for (input, expected, shown) in [
        ("nocolon", "no `:`", None),
        ("bad name:AAAA", "the name before `:`", None),
        ("k:!!!", "not base64", Some("named `k`")),
        ("k:AAAA", "3 bytes long, not 32", Some("named `k`")),
    ] {
        let error = input.parse::<TrustedKey>().unwrap_err().to_string();
        assert!(error.contains(expected), "{input}: {error}");
        assert!(!error.contains(input), "{input}: {error}");
        if let Some(shown) = shown {
            assert!(error.contains(shown), "{input}: {error}");
        }
    }
    // A secret key file's text given as a trusted key: no part of it shows.
    let (secret_text, _) = generate("k").unwrap();
    let error = secret_text
        .trim()
        .parse::<TrustedKey>()
        .unwrap_err()
        .to_string();
    assert!(error.contains("that is a secret key"), "{error}");
    let encoded = secret_text.trim().split_once(':').unwrap().1;
    for start in 0..=encoded.len() - 8 {
        assert!(!error.contains(&encoded[start..start + 8]), "{error}");
    }
}

#[test]
fn a_secret_key_file_is_private_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.secret");
    let key = SecretKey::generate("team-1").unwrap();
    key.write_new(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(SecretKey::load(&path).unwrap().public(), key.public());

    let other = SecretKey::generate("team-2").unwrap();
    let error = other.write_new(&path).unwrap_err();
    assert!(matches!(error, KeyError::Exists { .. }), "{error}");
    assert!(
        error.to_string().contains("refusing to overwrite"),
        "{error}"
    );
    assert_eq!(SecretKey::load(&path).unwrap().name(), "team-1");

    for mode in [0o640, 0o604, 0o620] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = SecretKey::load(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(
            error.contains(&format!("chmod 600 {}", path.display())),
            "{error}"
        );
        assert!(error.contains(&format!("{mode:04o}")), "{error}");
    }

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "team-1:tooshort\n").unwrap();
    let error = SecretKey::load(&path).unwrap_err().to_string();
    assert!(error.contains("team.secret"), "{error}");
    assert!(
        !error.contains("tooshort"),
        "secret material in an error: {error}"
    );
}
