//! Signed entries: ed25519 keys, the envelope an entry travels in, and its
//! verification.
//!
//! **Keys** are written as Nix writes them: a public key `NAME:<base64 of
//! 32 bytes>` (given to clients with `--trust`), a secret key file holding
//! one line `NAME:<base64 of 64 bytes>` (the seed, then the public key).
//! NAME is `[A-Za-z0-9][A-Za-z0-9._-]*` (at most 64 characters), such as
//! `team-cache-1`; bump the number to revoke. A secret key file is written
//! with mode 0600 and never over an existing file, and one that group or
//! others can read or write is refused.
//!
//! **What is signed** is a fingerprint of the entry, not the envelope's
//! bytes, so the envelope's layout can change without re-signing:
//!
//! ```text
//! xbuild-entry-v1;<bucket>;sha256:<key>;<platform>;sha256:<record>;sha256:<blob>:<size>,…
//! ```
//!
//! where `<record>` is the sha256 of the entry's record bytes and the blobs
//! (every output blob the entry needs, with its size) are sorted and
//! without duplicates. The platform is the one the output depends on
//! (`aarch64-linux`), or empty.
//!
//! **The envelope** is JSON:
//!
//! ```json
//! { "format": "xbuild-entry-v1", "bucket": "layer", "key": "sha256:…",
//!   "platform": "aarch64-linux",
//!   "outputs": [ { "digest": "sha256:…", "size": 1234 } ],
//!   "record": "<base64 of the record bytes>",
//!   "signatures": [ { "key": "team-cache-1", "signature": "<base64 of 64 bytes>" } ] }
//! ```
//!
//! [`verify`] accepts an envelope only if a signature in it verifies with a
//! trusted key of the signature's name, and only for the bucket and key it
//! was asked for: an entry signed for one key and served under another is
//! refused. Each refusal ([`TrustError`]) says why and names the signer.
//!
//! **Pointers** (the latest entry of a project, target and build name) are
//! signed the same way, over `xbuild-pointer-v1;<name>;<created>;sha256:<body>`,
//! in a document `{format, name, created, body, signatures}`.

use crate::backend::BlobRef;
use crate::hash::Sha256Digest;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The format of entry envelopes (and the first field of their fingerprint).
pub const ENTRY_FORMAT: &str = "xbuild-entry-v1";
/// The format of pointer documents.
pub const POINTER_FORMAT: &str = "xbuild-pointer-v1";

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Errors about keys: generating, writing, loading and parsing them.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key name {name:?} is invalid: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("refusing to overwrite {}: a file is there already", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write the secret key file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the secret key file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret key file {} can be read or written by group or others (mode {mode:04o}); run `chmod 600 {}`", path.display(), path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("the secret key file {} is not `NAME:<base64 of 64 bytes>`: {reason}", path.display())]
    MalformedSecret { path: PathBuf, reason: String },
    /// A `--trust` value (or `[cache] trusted-keys` entry) that does not
    /// parse. The value itself is never shown, in case it is a secret (a
    /// secret key file's text given by mistake): only its name, when that
    /// is a valid key name, and its length.
    #[error(
        "the trusted key (--trust, [cache] trusted-keys) {} is not `NAME:<base64 of 32 bytes>`: {reason} (the value is not shown, in case it is a secret)",
        describe_public(name.as_deref(), *length)
    )]
    MalformedPublic {
        /// The part before `:`, if it is a valid key name.
        name: Option<String>,
        /// Characters in the value.
        length: usize,
        reason: String,
    },
    #[error("cannot generate a key: the system's random source failed: {0}")]
    Random(String),
}

/// Why a remote entry (or pointer) is refused. Each names the entry and,
/// where one is known, the signer.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{what} is not a valid signed envelope: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what} is unsigned")]
    Unsigned { what: String },
    #[error("{what} is signed only by keys not trusted here: {}", .signers.join(", "))]
    UnknownKey { what: String, signers: Vec<String> },
    #[error(
        "{what}: the signature by {signer} does not verify (the entry was altered after signing, or signed by another key named {signer})"
    )]
    BadSignature { what: String, signer: String },
    #[error("{what} is signed by {signer} for another entry, {found}")]
    Mismatch {
        what: String,
        signer: String,
        found: String,
    },
}

impl TrustError {
    pub fn hint(&self) -> Option<String> {
        match self {
            TrustError::UnknownKey { .. } | TrustError::Unsigned { .. } => Some(
                "trust the team's public key with --trust NAME:<base64> (or [cache] trusted-keys), or push with --sign".into(),
            ),
            _ => None,
        }
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    let invalid = |reason| KeyError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("it must be 1 to 64 characters long"));
    }
    let valid = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if !valid || !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid(
            "it may hold only A-Z, a-z, 0-9, `.`, `_` and `-`, and must start with a letter or digit",
        ));
    }
    Ok(())
}

/// A secret signing key. `Debug` shows its name only.
pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.name)
    }
}

impl SecretKey {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<SecretKey, KeyError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| KeyError::Random(error.to_string()))?;
        Ok(SecretKey {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, as a client trusts it.
    pub fn public(&self) -> TrustedKey {
        TrustedKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The text of a secret key file: `NAME:<base64 of 64 bytes>\n`.
    pub fn to_file_text(&self) -> String {
        format!(
            "{}:{}\n",
            self.name,
            BASE64.encode(self.key.to_keypair_bytes())
        )
    }

    /// Parses the text of a secret key file (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<SecretKey, KeyError> {
        let malformed = |reason: &str| KeyError::MalformedSecret {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, encoded) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| malformed("there is no `:`"))?;
        check_name(name)?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| malformed("the part after `:` is not base64"))?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| malformed("the key is not 64 bytes long"))?;
        let key = SigningKey::from_keypair_bytes(&bytes)
            .map_err(|_| malformed("its public half does not match its secret half"))?;
        Ok(SecretKey {
            name: name.to_owned(),
            key,
        })
    }

    /// Loads a secret key file, refusing one that group or others can
    /// read or write.
    pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
        let read_error = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let mode = file.metadata().map_err(read_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode: mode & 0o7777,
            });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(read_error)?;
        SecretKey::parse(&text, path)
    }

    /// Writes the key to a new file at `path` with mode 0600; an existing
    /// file is never overwritten.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        write_secret_key_file(path, &self.to_file_text())
    }

    fn sign(&self, fingerprint: &str) -> SignatureEntry {
        SignatureEntry {
            key: self.name.clone(),
            signature: BASE64.encode(self.key.sign(fingerprint.as_bytes()).to_bytes()),
        }
    }
}

/// A new key named `name`: the text of its secret key file, and its
/// public key `NAME:<base64>`.
pub fn generate(name: &str) -> Result<(String, String), KeyError> {
    let key = SecretKey::generate(name)?;
    Ok((key.to_file_text(), key.public().to_string()))
}

/// Writes secret key file text to a new file with mode 0600, refusing to
/// overwrite anything at `path`.
pub fn write_secret_key_file(path: &Path, text: &str) -> Result<(), KeyError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_owned(),
            },
            _ => KeyError::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    let write_error = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    file.write_all(text.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// A public key a client trusts: parsed from and shown as `NAME:<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    name: String,
    key: VerifyingKey,
}

impl TrustedKey {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(self.key.to_bytes()))
    }
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({self})")
    }
}

/// ``named `ci`, of 91 characters,``, or `of 91 characters` without a
/// name worth showing.
fn describe_public(name: Option<&str>, length: usize) -> String {
    match name {
        Some(name) => format!("named `{name}`, of {length} characters,"),
        None => format!("of {length} characters"),
    }
}

impl std::str::FromStr for TrustedKey {
    type Err = KeyError;
    /// Parses `NAME:<base64>`. No error holds any of `input` but a valid
    /// key name.
    fn from_str(input: &str) -> Result<Self, KeyError> {
        let split = input.trim().split_once(':');
        let shown_name = split
            .map(|(name, _)| name)
            .filter(|name| check_name(name).is_ok())
            .map(str::to_owned);
        let malformed = |reason: String| KeyError::MalformedPublic {
            name: shown_name.clone(),
            length: input.chars().count(),
            reason,
        };
        let (name, encoded) = split.ok_or_else(|| malformed("there is no `:`".into()))?;
        if check_name(name).is_err() {
            return Err(malformed(
                "the name before `:` must be 1 to 64 of A-Z, a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit".into(),
            ));
        }
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| malformed("the part after `:` is not base64".into()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            malformed(format!(
                "the key is {} bytes long, not 32{}",
                bytes.len(),
                if bytes.len() == 64 {
                    " (that is a secret key: give the public key, which `xbuild cache keygen` printed)"
                } else {
                    ""
                }
            ))
        })?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| malformed("the bytes are not an ed25519 public key".into()))?;
        Ok(TrustedKey {
            name: name.to_owned(),
            key,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SignatureEntry {
    key: String,
    signature: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    format: String,
    bucket: String,
    key: Sha256Digest,
    platform: String,
    outputs: Vec<BlobRef>,
    record: String,
    signatures: Vec<SignatureEntry>,
}

/// An entry to sign: what the local cache holds for `(bucket, key)`.
#[derive(Debug, Clone, Copy)]
pub struct EntryToSign<'a> {
    pub bucket: &'a str,
    pub key: &'a Sha256Digest,
    /// The platform the output depends on (`aarch64-linux`), or "".
    pub platform: &'a str,
    pub record: &'a [u8],
    /// Every blob the entry needs.
    pub outputs: &'a [BlobRef],
}

/// A remote entry that passed [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEntry {
    pub bucket: String,
    pub key: Sha256Digest,
    pub platform: String,
    /// The record bytes, as the signer's local cache held them.
    pub record: Vec<u8>,
    /// The blobs, sorted, without duplicates.
    pub outputs: Vec<BlobRef>,
    /// The name of the trusted key whose signature verified.
    pub signer: String,
}

/// The text an entry's signature is over.
pub fn fingerprint(
    bucket: &str,
    key: &Sha256Digest,
    platform: &str,
    record: &[u8],
    outputs: &[BlobRef],
) -> String {
    let blobs: Vec<String> = sorted(outputs)
        .iter()
        .map(|blob| format!("{}:{}", blob.digest.oci(), blob.size))
        .collect();
    format!(
        "{ENTRY_FORMAT};{bucket};{};{platform};{};{}",
        key.oci(),
        Sha256Digest::of(record).oci(),
        blobs.join(",")
    )
}

fn sorted(outputs: &[BlobRef]) -> Vec<BlobRef> {
    let mut outputs = outputs.to_vec();
    outputs.sort();
    outputs.dedup();
    outputs
}

/// Whether a platform string can go in a fingerprint: printable ASCII
/// without `;`, at most 200 characters.
fn platform_ok(platform: &str) -> bool {
    platform.len() <= 200
        && platform
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b';')
}

/// Signs an entry and returns its envelope's bytes.
pub fn seal(
    signer: &SecretKey,
    entry: &EntryToSign,
) -> Result<Vec<u8>, crate::backend::RemoteError> {
    crate::backend::check_bucket(entry.bucket)?;
    if !platform_ok(entry.platform) {
        return Err(crate::backend::RemoteError::InvalidName {
            what: "platform",
            name: entry.platform.to_owned(),
            reason: "it must be printable ASCII without `;` or spaces, at most 200 characters",
        });
    }
    let fingerprint = fingerprint(
        entry.bucket,
        entry.key,
        entry.platform,
        entry.record,
        entry.outputs,
    );
    let envelope = Envelope {
        format: ENTRY_FORMAT.into(),
        bucket: entry.bucket.into(),
        key: *entry.key,
        platform: entry.platform.into(),
        outputs: sorted(entry.outputs),
        record: BASE64.encode(entry.record),
        signatures: vec![signer.sign(&fingerprint)],
    };
    Ok(serde_json::to_vec_pretty(&envelope).expect("envelopes serialise"))
}

/// Checks `signatures` over `fingerprint` against `trusted`: the name of
/// the key that verified, or why none did.
fn check_signatures(
    what: &str,
    fingerprint: &str,
    signatures: &[SignatureEntry],
    trusted: &[TrustedKey],
) -> Result<String, TrustError> {
    if signatures.is_empty() {
        return Err(TrustError::Unsigned { what: what.into() });
    }
    let mut bad = None;
    for entry in signatures {
        let candidates: Vec<&TrustedKey> =
            trusted.iter().filter(|key| key.name == entry.key).collect();
        if candidates.is_empty() {
            continue;
        }
        let signature = BASE64
            .decode(&entry.signature)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .map(|bytes| Signature::from_bytes(&bytes));
        let verified = signature.is_some_and(|signature| {
            candidates.iter().any(|key| {
                key.key
                    .verify_strict(fingerprint.as_bytes(), &signature)
                    .is_ok()
            })
        });
        if verified {
            return Ok(entry.key.clone());
        }
        bad.get_or_insert_with(|| entry.key.clone());
    }
    Err(match bad {
        Some(signer) => TrustError::BadSignature {
            what: what.into(),
            signer,
        },
        None => TrustError::UnknownKey {
            what: what.into(),
            signers: signatures.iter().map(|entry| entry.key.clone()).collect(),
        },
    })
}

/// Verifies the envelope served as the entry `expected_key` of
/// `expected_bucket` against the trusted keys, before anything of it is
/// used or any of its blobs fetched.
pub fn verify(
    envelope: &[u8],
    expected_bucket: &str,
    expected_key: &Sha256Digest,
    trusted: &[TrustedKey],
) -> Result<VerifiedEntry, TrustError> {
    let what = format!("the entry {expected_bucket}/{}", expected_key.hex());
    let malformed = |reason: String| TrustError::Malformed {
        what: what.clone(),
        reason,
    };
    let envelope: Envelope =
        serde_json::from_slice(envelope).map_err(|error| malformed(error.to_string()))?;
    if envelope.format != ENTRY_FORMAT {
        return Err(malformed(format!(
            "its format is `{}`, not `{ENTRY_FORMAT}`",
            envelope.format
        )));
    }
    if !platform_ok(&envelope.platform) {
        return Err(malformed("its platform is not a platform name".into()));
    }
    let record = BASE64
        .decode(&envelope.record)
        .map_err(|_| malformed("its record is not base64".into()))?;
    let fingerprint = fingerprint(
        &envelope.bucket,
        &envelope.key,
        &envelope.platform,
        &record,
        &envelope.outputs,
    );
    let signer = check_signatures(&what, &fingerprint, &envelope.signatures, trusted)?;
    if envelope.bucket != expected_bucket || envelope.key != *expected_key {
        return Err(TrustError::Mismatch {
            what,
            signer,
            found: format!("{}/{}", envelope.bucket, envelope.key.hex()),
        });
    }
    Ok(VerifiedEntry {
        bucket: envelope.bucket,
        key: envelope.key,
        platform: envelope.platform,
        record,
        outputs: sorted(&envelope.outputs),
        signer,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PointerDocument {
    format: String,
    name: String,
    /// Seconds since the Unix epoch when it was signed.
    created: u64,
    body: String,
    signatures: Vec<SignatureEntry>,
}

/// A pointer document that passed [`open_pointer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPointer {
    pub name: String,
    pub created: u64,
    pub body: Vec<u8>,
    pub signer: String,
}

fn pointer_fingerprint(name: &str, created: u64, body: &[u8]) -> String {
    format!(
        "{POINTER_FORMAT};{name};{created};{}",
        Sha256Digest::of(body).oci()
    )
}

/// Signs the pointer `name` with content `body` (created now).
pub fn seal_pointer(
    signer: &SecretKey,
    name: &str,
    body: &[u8],
) -> Result<Vec<u8>, crate::backend::RemoteError> {
    crate::backend::check_pointer(name)?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let document = PointerDocument {
        format: POINTER_FORMAT.into(),
        name: name.into(),
        created,
        body: BASE64.encode(body),
        signatures: vec![signer.sign(&pointer_fingerprint(name, created, body))],
    };
    Ok(serde_json::to_vec_pretty(&document).expect("pointers serialise"))
}

/// Verifies a pointer document served as `expected_name`.
pub fn open_pointer(
    document: &[u8],
    expected_name: &str,
    trusted: &[TrustedKey],
) -> Result<VerifiedPointer, TrustError> {
    let what = format!("the pointer {expected_name}");
    let malformed = |reason: String| TrustError::Malformed {
        what: what.clone(),
        reason,
    };
    let document: PointerDocument =
        serde_json::from_slice(document).map_err(|error| malformed(error.to_string()))?;
    if document.format != POINTER_FORMAT {
        return Err(malformed(format!(
            "its format is `{}`, not `{POINTER_FORMAT}`",
            document.format
        )));
    }
    let body = BASE64
        .decode(&document.body)
        .map_err(|_| malformed("its body is not base64".into()))?;
    let fingerprint = pointer_fingerprint(&document.name, document.created, &body);
    let signer = check_signatures(&what, &fingerprint, &document.signatures, trusted)?;
    if document.name != expected_name {
        return Err(TrustError::Mismatch {
            what,
            signer,
            found: format!("the pointer {}", document.name),
        });
    }
    Ok(VerifiedPointer {
        name: document.name,
        created: document.created,
        body,
        signer,
    })
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
