//! Signed `InRelease` files: loading OpenPGP keyrings (binary or armored),
//! verifying the cleartext signature in-process with rpgp, and parsing the
//! signed text into a [`Release`] (suite metadata and the `SHA256` table of
//! index files). Only text covered by a good signature is ever parsed; an
//! unsigned file is an error, never a fallback.

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType};
use pgp::types::{Fingerprint, KeyDetails, KeyId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::hash::Sha256Digest;

/// The first line of an OpenPGP cleartext-signed message.
const CLEARTEXT_HEADER: &str = "-----BEGIN PGP SIGNED MESSAGE-----";

/// Errors from loading keyrings and verifying `InRelease` files.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{url} is not signed: it has no OpenPGP cleartext signature")]
    NotSigned { url: String },
    #[error("the signature block of {url} cannot be read")]
    UnreadableSignature {
        url: String,
        #[source]
        source: pgp::errors::Error,
    },
    #[error(
        "BAD signature on {url}: it does not verify with the key that issued it ({}); the file was altered or corrupted",
        .fingerprints.join(", ")
    )]
    BadSignature {
        url: String,
        fingerprints: Vec<String>,
    },
    #[error(
        "{url} is signed by {}, which is not in the keyring ({})",
        .issuers.join(", "),
        display_paths(.sources)
    )]
    UnknownKey {
        url: String,
        issuers: Vec<String>,
        sources: Vec<PathBuf>,
    },
    #[error(
        "{url} is signed only by key {fingerprint}, which expired on {}",
        format_release_date(*.expired_at)
    )]
    KeyExpired {
        url: String,
        fingerprint: String,
        expired_at: SystemTime,
    },
    #[error("{url} is signed only with the weak digest {algorithm}, which is not accepted")]
    WeakDigest { url: String, algorithm: String },
    #[error(
        "{url} has expired: its Valid-Until is {}, and it is now {}",
        format_release_date(*.valid_until),
        format_release_date(*.now)
    )]
    Expired {
        url: String,
        valid_until: SystemTime,
        now: SystemTime,
    },
    #[error("{url}, line {line}: {reason}")]
    Malformed {
        url: String,
        line: usize,
        reason: String,
    },
    #[error("cannot read keyring {path}")]
    Keyring {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl ReleaseError {
    /// What a person can do about this error.
    pub fn hint(&self) -> &'static str {
        match self {
            ReleaseError::NotSigned { .. } => {
                "use the repository's InRelease file (not Release); a mirror or proxy may be serving a stripped copy"
            }
            ReleaseError::UnreadableSignature { .. } => {
                "the file is truncated or corrupted; fetch it again, and check any proxy between you and the mirror"
            }
            ReleaseError::BadSignature { .. } => {
                "the file was modified after signing: fetch it again, and if it persists use another mirror"
            }
            ReleaseError::UnknownKey { .. } => {
                "add the repository's signing key to the keyring (for Debian: the debian-archive-keyring package), or check the repository URL"
            }
            ReleaseError::KeyExpired { .. } => {
                "update the keyring (for Debian: upgrade debian-archive-keyring) to get the key's extended expiry"
            }
            ReleaseError::WeakDigest { .. } => {
                "the repository must be re-signed with SHA-256 or stronger; contact its maintainer"
            }
            ReleaseError::Expired { .. } => {
                "the mirror is stale or the system clock is wrong: use an up-to-date mirror or fix the clock"
            }
            ReleaseError::Malformed { .. } => {
                "the repository's Release file is not in the expected format; report it to the repository maintainer"
            }
            ReleaseError::Keyring { .. } => {
                "give a keyring exported with `gpg --export` (binary) or `gpg --export --armor` (.asc)"
            }
        }
    }
}

/// One index file listed in the `SHA256` field of a Release file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHash {
    pub digest: Sha256Digest,
    pub size: u64,
}

/// The verified content of an `InRelease` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub date: Option<SystemTime>,
    pub valid_until: Option<SystemTime>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub acquire_by_hash: bool,
    /// Index files by path relative to the suite directory
    /// (`main/binary-arm64/Packages.xz`).
    pub sha256: BTreeMap<String, FileHash>,
    /// Fingerprint (uppercase hex) of the key or subkey whose signature verified.
    pub signer: String,
    /// Fingerprint (uppercase hex) of the primary key that `signer` belongs to.
    pub signer_primary: String,
}

/// The public key material of one key that may sign: a primary key, or a
/// subkey whose binding to its primary key was checked when loading.
#[derive(Debug, Clone)]
enum SignerKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

#[derive(Debug, Clone)]
struct Signer {
    key: SignerKey,
    fingerprint: Fingerprint,
    key_id: KeyId,
    primary_fingerprint: Fingerprint,
    /// When the key (or its primary key) stops being valid, if ever.
    expires_at: Option<SystemTime>,
}

impl Signer {
    fn verify(&self, signature: &Signature, text: &[u8]) -> bool {
        match &self.key {
            SignerKey::Primary(key) => signature.verify(key, text).is_ok(),
            SignerKey::Subkey(key) => signature.verify(key, text).is_ok(),
        }
    }
}

/// Trusted public keys (primary keys and their signing subkeys), and the
/// files they were loaded from.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    signers: Vec<Signer>,
    primaries: Vec<Fingerprint>,
    sources: Vec<PathBuf>,
}

impl Keyring {
    /// Loads a keyring file: binary (as `gpg --export` writes, possibly many
    /// keys) or ASCII-armored, detected from its content.
    pub fn load(path: &Path) -> Result<Keyring, ReleaseError> {
        let keyring_error =
            |source: Box<dyn std::error::Error + Send + Sync>| ReleaseError::Keyring {
                path: path.to_path_buf(),
                source,
            };
        let bytes = fs_err::read(path).map_err(|error| keyring_error(Box::new(error)))?;
        if bytes.len() >= 12 && &bytes[8..12] == b"KBXf" {
            return Err(keyring_error(
                "this is a GnuPG keybox (pubring.kbx), not a keyring; export it with `gpg --export`".into(),
            ));
        }
        let armored = bytes.trim_ascii_start().starts_with(b"-----BEGIN PGP");
        let keys: Vec<SignedPublicKey> = if armored {
            let (keys, _headers) = SignedPublicKey::from_armor_many(&bytes[..])
                .map_err(|error| keyring_error(Box::new(error)))?;
            keys.collect::<Result<_, _>>()
        } else {
            SignedPublicKey::from_bytes_many(&bytes[..])
                .map_err(|error| keyring_error(Box::new(error)))?
                .collect::<Result<_, _>>()
        }
        .map_err(|error| keyring_error(Box::new(error)))?;
        if keys.is_empty() {
            return Err(keyring_error("the file holds no OpenPGP public key".into()));
        }
        let mut keyring = Keyring {
            sources: vec![path.to_path_buf()],
            ..Keyring::default()
        };
        for key in &keys {
            keyring.add(key);
        }
        Ok(keyring)
    }

    /// Loads several keyring files into one keyring.
    pub fn load_all(paths: &[PathBuf]) -> Result<Keyring, ReleaseError> {
        let mut keyring = Keyring::default();
        for path in paths {
            let loaded = Keyring::load(path)?;
            keyring.signers.extend(loaded.signers);
            keyring.primaries.extend(loaded.primaries);
            keyring.sources.extend(loaded.sources);
        }
        Ok(keyring)
    }

    /// Fingerprints (uppercase hex) of the primary keys, in load order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.primaries
            .iter()
            .map(|fingerprint| format!("{fingerprint:X}"))
            .collect()
    }

    /// The files this keyring was loaded from.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// Adds a primary key (unless revoked) and every subkey that is bound to
    /// it for signing, not revoked, and carries a valid back-signature.
    fn add(&mut self, key: &SignedPublicKey) {
        let primary = &key.primary_key;
        let primary_fingerprint = primary.fingerprint();
        let primary_key_id = primary.legacy_key_id();
        let revoked = key.details.revocation_signatures.iter().any(|signature| {
            signature.typ() == Some(SignatureType::KeyRevocation)
                && signature.verify_key(primary).is_ok()
        });
        if revoked {
            return;
        }
        self.primaries.push(primary_fingerprint.clone());
        let self_signatures = key
            .details
            .users
            .iter()
            .flat_map(|user| &user.signatures)
            .chain(&key.details.direct_signatures)
            .filter(|signature| issued_by(signature, &primary_fingerprint, &primary_key_id));
        let primary_expires_at = expiry(primary.created_at().into(), self_signatures);
        self.signers.push(Signer {
            key: SignerKey::Primary(primary.clone()),
            fingerprint: primary_fingerprint.clone(),
            key_id: primary_key_id,
            primary_fingerprint: primary_fingerprint.clone(),
            expires_at: primary_expires_at,
        });

        for subkey in &key.public_subkeys {
            let mut bindings = Vec::new();
            let mut subkey_revoked = false;
            for signature in &subkey.signatures {
                if signature
                    .verify_subkey_binding(primary, &subkey.key)
                    .is_err()
                {
                    continue;
                }
                match signature.typ() {
                    Some(SignatureType::SubkeyRevocation) => subkey_revoked = true,
                    Some(SignatureType::SubkeyBinding) => {
                        let back_signed = signature.embedded_signature().is_some_and(|back| {
                            back.verify_primary_key_binding(&subkey.key, primary)
                                .is_ok()
                        });
                        if signature.key_flags().sign() && back_signed {
                            bindings.push(signature);
                        }
                    }
                    _ => {}
                }
            }
            if subkey_revoked || bindings.is_empty() {
                continue;
            }
            let subkey_expires_at = expiry(subkey.key.created_at().into(), bindings.into_iter());
            let expires_at = match (primary_expires_at, subkey_expires_at) {
                (Some(first), Some(second)) => Some(first.min(second)),
                (first, second) => first.or(second),
            };
            self.signers.push(Signer {
                key: SignerKey::Subkey(subkey.key.clone()),
                fingerprint: subkey.key.fingerprint(),
                key_id: subkey.key.legacy_key_id(),
                primary_fingerprint: primary_fingerprint.clone(),
                expires_at,
            });
        }
    }
}

fn issued_by(signature: &Signature, fingerprint: &Fingerprint, key_id: &KeyId) -> bool {
    signature.issuer_fingerprint().contains(&fingerprint)
        || signature.issuer_key_id().contains(&key_id)
}

/// The expiry set by the newest of `signatures` (self-signatures or
/// bindings), counted from the key's creation; `None` when it never expires.
fn expiry<'a>(
    created: SystemTime,
    signatures: impl Iterator<Item = &'a Signature>,
) -> Option<SystemTime> {
    let newest =
        signatures.max_by_key(|signature| signature.created().map(|time| time.as_secs()))?;
    let lifetime = newest.key_expiration_time()?.as_secs();
    (lifetime != 0).then(|| created + Duration::from_secs(u64::from(lifetime)))
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no keyring files".to_string();
    }
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Verifies the cleartext signature of `inrelease` with `keyring` and parses
/// the signed text. `url` names the file in errors; `now` is compared with
/// `Valid-Until` and key expiry.
///
/// Succeeds if any signature in the message verifies with an unexpired key
/// of the keyring.
pub fn verify_inrelease(
    inrelease: &[u8],
    keyring: &Keyring,
    url: &str,
    now: SystemTime,
) -> Result<Release, ReleaseError> {
    let text = std::str::from_utf8(inrelease).map_err(|error| ReleaseError::Malformed {
        url: url.to_string(),
        line: 1 + inrelease[..error.valid_up_to()]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count(),
        reason: "the file is not valid UTF-8".to_string(),
    })?;
    let cleartext = open_cleartext(text, url)?;
    let signer = find_good_signer(
        &cleartext.signatures,
        &cleartext.signed_text,
        keyring,
        url,
        now,
    )?;
    let mut release = parse_release(&cleartext.signed_text, url, cleartext.first_line)?;
    release.signer = format!("{:X}", signer.fingerprint);
    release.signer_primary = format!("{:X}", signer.primary_fingerprint);
    if let Some(valid_until) = release.valid_until
        && valid_until < now
    {
        return Err(ReleaseError::Expired {
            url: url.to_string(),
            valid_until,
            now,
        });
    }
    Ok(release)
}

/// A cleartext-signed message taken apart.
#[derive(Debug)]
struct Cleartext {
    /// The text the signatures cover, canonical as RFC 9580 section 7
    /// defines it: dash-escapes removed, trailing spaces and tabs trimmed,
    /// CRLF line breaks, no line break after the last line.
    signed_text: String,
    /// The line of the file (counted from 1) the signed text starts on.
    first_line: usize,
    signatures: Vec<Signature>,
}

/// Splits a cleartext-signed message into its canonical signed text and its
/// signatures (parsed by rpgp). rpgp 0.21's own `CleartextSignedMessage`
/// parser rescans the whole body after every line, which takes 30-60 ms on
/// Debian's 150 KB InRelease; this split is linear. Strict: nothing but
/// whitespace may surround the message, and a body line starting with `-`
/// must be dash-escaped.
fn open_cleartext(text: &str, url: &str) -> Result<Cleartext, ReleaseError> {
    let malformed = |line: usize, reason: &str| ReleaseError::Malformed {
        url: url.to_string(),
        line,
        reason: reason.to_string(),
    };
    let not_signed = || ReleaseError::NotSigned {
        url: url.to_string(),
    };
    // (line number, byte offset, line without its line break)
    let mut lines = text
        .split_inclusive('\n')
        .enumerate()
        .scan(0, |offset, (index, raw)| {
            let start = *offset;
            *offset += raw.len();
            let line = raw.strip_suffix('\n').unwrap_or(raw);
            Some((index + 1, start, line.strip_suffix('\r').unwrap_or(line)))
        });
    loop {
        match lines.next() {
            None => return Err(not_signed()),
            Some((_, _, line)) if line.trim_end() == CLEARTEXT_HEADER => break,
            Some((_, _, line)) if line.trim().is_empty() => {}
            Some((number, _, _)) if text.contains(CLEARTEXT_HEADER) => {
                return Err(malformed(number, "text before the signed message"));
            }
            Some(_) => return Err(not_signed()),
        }
    }
    let first_line = loop {
        match lines.next() {
            None => return Err(not_signed()),
            Some((number, _, line)) if line.trim().is_empty() => break number + 1,
            Some((_, _, line)) if line.starts_with("Hash:") => {}
            Some((number, _, _)) => {
                return Err(malformed(
                    number,
                    "unexpected armor header (only `Hash:` is allowed)",
                ));
            }
        }
    };
    let mut signed_text = String::with_capacity(text.len());
    let armor_start = loop {
        let Some((number, start, line)) = lines.next() else {
            return Err(not_signed());
        };
        let content = if line.trim_end() == "-----BEGIN PGP SIGNATURE-----" {
            break start;
        } else if let Some(escaped) = line.strip_prefix("- ") {
            escaped
        } else if line.starts_with('-') {
            return Err(malformed(
                number,
                "a line starting with `-` must be dash-escaped as `- `",
            ));
        } else {
            line
        };
        if number > first_line {
            signed_text.push_str("\r\n");
        }
        signed_text.push_str(content.trim_end_matches([' ', '\t']));
    };
    let armor = &text[armor_start..];
    let unreadable = |source| ReleaseError::UnreadableSignature {
        url: url.to_string(),
        source,
    };
    let (signatures, _headers) =
        DetachedSignature::from_armor_many(armor.as_bytes()).map_err(unreadable)?;
    let signatures: Vec<Signature> = signatures
        .map(|signature| signature.map(|detached| detached.signature))
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    const FOOTER: &str = "-----END PGP SIGNATURE-----";
    if let Some(end) = armor.find(FOOTER)
        && !armor[end + FOOTER.len()..].trim().is_empty()
    {
        let line = 1 + text[..armor_start + end].matches('\n').count() + 1;
        return Err(malformed(line, "data after the signature block"));
    }
    if signatures.is_empty() {
        return Err(not_signed());
    }
    Ok(Cleartext {
        signed_text,
        first_line,
        signatures,
    })
}

/// The first signer whose signature verifies; otherwise the error that best
/// explains why none did (expired key, weak digest, bad signature, unknown key).
fn find_good_signer<'k>(
    signatures: &[Signature],
    signed_text: &str,
    keyring: &'k Keyring,
    url: &str,
    now: SystemTime,
) -> Result<&'k Signer, ReleaseError> {
    let mut bad = Vec::new();
    let mut unknown = Vec::new();
    let mut expired = None;
    let mut weak = None;
    for signature in signatures {
        let fingerprints = signature.issuer_fingerprint();
        let key_ids = signature.issuer_key_id();
        let candidates: Vec<&Signer> = keyring
            .signers
            .iter()
            .filter(|signer| {
                (fingerprints.is_empty() && key_ids.is_empty())
                    || fingerprints.contains(&&signer.fingerprint)
                    || key_ids.contains(&&signer.key_id)
            })
            .collect();
        if candidates.is_empty() {
            match (fingerprints.first(), key_ids.is_empty()) {
                (Some(fingerprint), _) => unknown.push(format!("{fingerprint:X}")),
                (None, false) => unknown.extend(key_ids.iter().map(hex::encode_upper)),
                (None, true) => unknown.push("a key that names no issuer".to_string()),
            }
            continue;
        }
        let algorithm = signature.hash_alg();
        if let Some(
            algorithm @ (HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160),
        ) = algorithm
        {
            weak = Some(algorithm.to_string());
            continue;
        }
        let Some(signer) = candidates
            .into_iter()
            .find(|signer| signer.verify(signature, signed_text.as_bytes()))
        else {
            match (fingerprints.first(), key_ids.first()) {
                (Some(fingerprint), _) => bad.push(format!("{fingerprint:X}")),
                (None, Some(key_id)) => bad.push(hex::encode_upper(key_id)),
                (None, None) => bad.push("no issuer named".to_string()),
            }
            continue;
        };
        match signer.expires_at {
            Some(expires_at) if expires_at <= now => expired = Some((signer, expires_at)),
            _ => return Ok(signer),
        }
    }
    let url = url.to_string();
    if let Some((signer, expired_at)) = expired {
        Err(ReleaseError::KeyExpired {
            url,
            fingerprint: format!("{:X}", signer.fingerprint),
            expired_at,
        })
    } else if !bad.is_empty() {
        Err(ReleaseError::BadSignature {
            url,
            fingerprints: bad,
        })
    } else if let Some(algorithm) = weak {
        Err(ReleaseError::WeakDigest { url, algorithm })
    } else {
        Err(ReleaseError::UnknownKey {
            url,
            issuers: unknown,
            sources: keyring.sources.clone(),
        })
    }
}

/// A field of the Release paragraph: its first line number, the text after
/// the colon, and the continuation lines with their numbers.
struct Field<'t> {
    line: usize,
    value: &'t str,
    continuation: Vec<(usize, &'t str)>,
}

/// Parses the (already verified) Release text. Line numbers in errors are
/// those of the InRelease file: `line_offset` is the line the text starts on.
fn parse_release(text: &str, url: &str, line_offset: usize) -> Result<Release, ReleaseError> {
    let malformed = |line: usize, reason: String| ReleaseError::Malformed {
        url: url.to_string(),
        line,
        reason,
    };
    let mut fields: BTreeMap<String, Field<'_>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut paragraph_ended = false;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_number = line_offset + index;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() {
            paragraph_ended = !fields.is_empty();
            continue;
        }
        if paragraph_ended {
            return Err(malformed(
                line_number,
                "a Release file has a single paragraph, but a second one starts here".into(),
            ));
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(name) = &current else {
                return Err(malformed(
                    line_number,
                    "continuation line before any field".into(),
                ));
            };
            if let Some(field) = fields.get_mut(name) {
                field.continuation.push((line_number, line.trim()));
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(
                line_number,
                format!("expected `Field: value`, found `{line}`"),
            ));
        };
        let key = name.trim().to_ascii_lowercase();
        if fields.contains_key(&key) {
            return Err(malformed(
                line_number,
                format!("field `{}` appears twice", name.trim()),
            ));
        }
        fields.insert(
            key.clone(),
            Field {
                line: line_number,
                value: value.trim(),
                continuation: Vec::new(),
            },
        );
        current = Some(key);
    }

    let text_field = |name: &str| fields.get(name).map(|field| field.value.to_string());
    let date_field = |name: &str| -> Result<Option<SystemTime>, ReleaseError> {
        let Some(field) = fields.get(name) else {
            return Ok(None);
        };
        parse_release_date(field.value).map(Some).ok_or_else(|| {
            malformed(
                field.line,
                format!("cannot read the date `{}`", field.value),
            )
        })
    };
    let list_field = |name: &str| -> Vec<String> {
        fields
            .get(name)
            .map(|field| field.value.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let acquire_by_hash = match fields.get("acquire-by-hash") {
        None => false,
        Some(field) => match field.value.to_ascii_lowercase().as_str() {
            "yes" => true,
            "no" => false,
            other => {
                return Err(malformed(
                    field.line,
                    format!("Acquire-By-Hash must be `yes` or `no`, not `{other}`"),
                ));
            }
        },
    };
    let Some(sha256_field) = fields.get("sha256") else {
        return Err(malformed(
            line_offset,
            "the Release paragraph has no SHA256 field".into(),
        ));
    };
    let mut sha256 = BTreeMap::new();
    for &(line, entry) in &sha256_field.continuation {
        let parts: Vec<&str> = entry.split_whitespace().collect();
        let [digest, size, path] = parts[..] else {
            return Err(malformed(
                line,
                format!("expected `<sha256> <size> <path>`, found `{entry}`"),
            ));
        };
        let digest = Sha256Digest::parse(digest)
            .ok_or_else(|| malformed(line, format!("`{digest}` is not a SHA-256 digest")))?;
        let size = size
            .parse::<u64>()
            .map_err(|_| malformed(line, format!("`{size}` is not a size in bytes")))?;
        sha256.insert(path.to_string(), FileHash { digest, size });
    }

    Ok(Release {
        origin: text_field("origin"),
        label: text_field("label"),
        suite: text_field("suite"),
        codename: text_field("codename"),
        date: date_field("date")?,
        valid_until: date_field("valid-until")?,
        architectures: list_field("architectures"),
        components: list_field("components"),
        acquire_by_hash,
        sha256,
        signer: String::new(),
        signer_primary: String::new(),
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1)
        - days_from_civil(year, month, 1)
}

/// Parses a Release date such as `Sat, 10 May 2025 09:01:43 UTC` (the
/// weekday is optional; the zone is `UTC`, `GMT`, `UT`, `Z` or `±HHMM`).
pub fn parse_release_date(text: &str) -> Option<SystemTime> {
    let mut tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.first().is_some_and(|first| first.ends_with(',')) {
        tokens.remove(0);
    }
    let [day, month, year, time, zone] = tokens[..] else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = 1 + MONTHS
        .iter()
        .position(|name| name.eq_ignore_ascii_case(month))? as i64;
    let year: i64 = year
        .parse()
        .ok()
        .filter(|year| (1970..=9999).contains(year))?;
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let clock: Vec<i64> = time
        .split(':')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    let (hour, minute, second) = match clock[..] {
        [hour, minute] => (hour, minute, 0),
        [hour, minute, second] => (hour, minute, second),
        _ => return None,
    };
    if !(0..24).contains(&hour) || !(0..60).contains(&minute) || !(0..=60).contains(&second) {
        return None;
    }
    let offset_seconds = match zone {
        "UTC" | "GMT" | "UT" | "Z" => 0,
        _ => {
            let (sign, digits) = match zone.as_bytes().first()? {
                b'+' => (1, &zone[1..]),
                b'-' => (-1, &zone[1..]),
                _ => return None,
            };
            if digits.len() != 4 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// Formats a time the way Release files write dates, in UTC.
pub fn format_release_date(time: SystemTime) -> String {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(duration) => duration.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} UTC",
        WEEKDAYS[(days + 4).rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::OnceLock;

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
        let listing =
            String::from_utf8(gpg(home, &["--with-colons", "--list-keys", user])).unwrap();
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
        assert!(
            verify_inrelease(crlf.as_bytes(), &keyring, "test://crlf", at(RELEASE_DATE)).is_ok()
        );
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
        let error = verify_inrelease(&fixtures.signed_by_ed25519, &keyring, "test://ed", later)
            .unwrap_err();
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
        let (_directory, keybox) =
            keyring_file(b"\0\0\0\x20\x01\x01\0\0KBXf\0\0\0\0", "pubring.kbx");
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
}
