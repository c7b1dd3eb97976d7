//! SHA-256 digests and the streaming adapters that compute them while bytes
//! pass through, so no file is ever read twice just to hash it.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A SHA-256 digest. Displays as lowercase hex (64 characters).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        Self::from_hasher(hasher)
    }

    fn from_hasher(hasher: Sha256) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(&hasher.finalize());
        Sha256Digest(out)
    }

    /// Lowercase hex form.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The OCI form, `sha256:<hex>`.
    pub fn oci(&self) -> String {
        format!("sha256:{}", self.hex())
    }

    /// Parses either `<hex>` or `sha256:<hex>`.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix("sha256:").unwrap_or(text);
        if hex_part.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).ok()?;
        Some(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256Digest::parse(s).ok_or_else(|| format!("not a sha256 digest: {s:?}"))
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.oci())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Sha256Digest::parse(&text).ok_or_else(|| serde::de::Error::custom("not a sha256 digest"))
    }
}

/// Incremental hasher that also counts bytes.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest::from_hasher(self.inner), self.len)
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Digest and byte count of what was read so far.
    pub fn finish(self) -> (Sha256Digest, u64) {
        self.hasher.finish()
    }
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
    /// The inner reader back, with the digest and byte count of what was
    /// read through it.
    pub fn into_parts(self) -> (R, Sha256Digest, u64) {
        let (digest, len) = self.hasher.finish();
        (self.inner, digest, len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        let (digest, len) = self.hasher.finish();
        (self.inner, digest, len)
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_known_constant() {
        assert_eq!(
            Sha256Digest::of(b"").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn reader_and_writer_agree_with_one_shot_digest() {
        let data = b"hello world".repeat(1000);
        let mut reader = HashingReader::new(&data[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        let (read_digest, read_len) = reader.finish();
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(&data).unwrap();
        let (_, written_digest, written_len) = writer.finish();
        assert_eq!(read_digest, Sha256Digest::of(&data));
        assert_eq!(written_digest, read_digest);
        assert_eq!((read_len, written_len), (11000, 11000));
    }

    #[test]
    fn parse_accepts_both_forms_and_rejects_garbage() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(Sha256Digest::parse(&d.oci()), Some(d));
        assert_eq!(Sha256Digest::parse(&d.hex()), Some(d));
        assert_eq!(Sha256Digest::parse("sha256:abc"), None);
        assert_eq!(Sha256Digest::parse(&"zz".repeat(32)), None);
    }
}
