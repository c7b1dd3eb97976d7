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
use std::time::{Duration, SystemTime};

use crate::hash::Sha256Digest;

mod date;

pub use date::{format_release_date, parse_release_date};

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
    /// Whether the file may have been damaged on its way (cut short,
    /// garbled, caught mid-update), so fetching it again may help; a key
    /// or date problem is the file as signed.
    pub fn may_be_transfer_damage(&self) -> bool {
        matches!(
            self,
            ReleaseError::NotSigned { .. }
                | ReleaseError::UnreadableSignature { .. }
                | ReleaseError::BadSignature { .. }
                | ReleaseError::Malformed { .. }
        )
    }

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
    /// `Version:` (`12.8`, `13.1`): the release's point version, absent
    /// for testing and unstable.
    pub version: Option<String>,
    pub date: Option<SystemTime>,
    pub valid_until: Option<SystemTime>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub acquire_by_hash: bool,
    /// `NotAutomatic: yes` (backports, experimental): apt installs nothing
    /// from the suite unless asked for it by name (`pkg/suite`).
    pub not_automatic: bool,
    /// `ButAutomaticUpgrades: yes`: apt upgrades what came from the suite;
    /// for an empty system the suite is still taken only when asked for.
    pub but_automatic_upgrades: bool,
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
    let yes_no = |name: &str, shown: &str| -> Result<bool, ReleaseError> {
        match fields.get(name) {
            None => Ok(false),
            Some(field) => match field.value.to_ascii_lowercase().as_str() {
                "yes" => Ok(true),
                "no" => Ok(false),
                other => Err(malformed(
                    field.line,
                    format!("{shown} must be `yes` or `no`, not `{other}`"),
                )),
            },
        }
    };
    let acquire_by_hash = yes_no("acquire-by-hash", "Acquire-By-Hash")?;
    let not_automatic = yes_no("notautomatic", "NotAutomatic")?;
    let but_automatic_upgrades = yes_no("butautomaticupgrades", "ButAutomaticUpgrades")?;
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
        version: text_field("version"),
        date: date_field("date")?,
        valid_until: date_field("valid-until")?,
        architectures: list_field("architectures"),
        components: list_field("components"),
        acquire_by_hash,
        not_automatic,
        but_automatic_upgrades,
        sha256,
        signer: String::new(),
        signer_primary: String::new(),
    })
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
