//! What the data tarball of a `.deb` may hold, checked the same way
//! wherever a package is used: streamed into an image layer
//! ([`crate::image::layer`]) or unpacked into a sysroot or toolchain
//! directory ([`crate::debian::unpack`]). A Debian package never needs
//! anything refused here, so a package that holds it is crafted or broken
//! and is refused whole, naming the entry:
//!
//! - a device node (Debian policy: packages do not ship device files;
//!   `makedev` creates them from its maintainer script). FIFOs are legal,
//!   if rare, and kept;
//! - a path with a component starting with `.wh.`: OCI runtimes (and
//!   `xbuild run`) apply such names as whiteouts, so `etc/.wh.passwd`
//!   would delete another layer's file and `.wh..wh..opq` a whole
//!   directory's contents;
//! - an entry under a symlink the same package made earlier
//!   (`etc/evil -> /`, then `etc/evil/root/.bashrc`), a directory where it
//!   made one, and a hard link to a path under one: each would be written
//!   wherever the symlink points, outside the package's own files.
//!
//! Paths given to [`EntryPolicy`] are normalised (relative, `/`-separated,
//! no empty, `.` or `..` components): callers refuse `..` themselves while
//! normalising (the layer writer with [`UnsafeEntry::ParentComponent`]),
//! and give the layer writer's paths as they are in the merged-/usr image,
//! so that `bin/x` and `usr/bin/x` are one path.

use std::collections::HashSet;
use tar::EntryType;

/// The prefix OCI image layers give whiteout entries.
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// Why an entry of a package's data tarball is refused. The message
/// follows the entry's path (`` `./etc/x` is a character device… ``).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeEntry {
    #[error("has a `..` component, which would lead out of the root")]
    ParentComponent,
    #[error("is a hard link to `{target}`, a path with a `..` component")]
    HardLinkParentComponent { target: String },
    #[error("is a hard link to `{target}`, which is not earlier in the layer")]
    HardLinkOutsideLayer { target: String },
    #[error(
        "lies under `{symlink}`, a symlink the package made earlier: it would be written wherever that symlink points"
    )]
    UnderSymlink { symlink: String },
    #[error(
        "is a hard link to `{target}`, which lies under `{symlink}`, a symlink the package made earlier"
    )]
    HardLinkUnderSymlink { target: String, symlink: String },
    #[error(
        "is a directory where the package made a symlink earlier: it would be made wherever that symlink points"
    )]
    DirectoryOverSymlink,
    #[error("is a {kind} device node; Debian packages do not ship device files")]
    Device { kind: &'static str },
    #[error(
        "has the component `{component}`: image layers apply names starting with `.wh.` as whiteouts, which delete other files"
    )]
    WhiteoutName { component: String },
    #[error("has a tar entry type xbuild does not support ({kind})")]
    Unsupported { kind: String },
}

/// The checks of one package's data tarball, entry by entry in archive
/// order: it remembers the symlinks the package made so far.
#[derive(Debug, Default)]
pub struct EntryPolicy {
    /// Normalised paths of the package's symlinks.
    symlinks: HashSet<Vec<u8>>,
}

impl EntryPolicy {
    /// A policy for a new package: no symlinks seen yet.
    pub fn new() -> EntryPolicy {
        EntryPolicy::default()
    }

    /// Checks the entry of type `kind` at the normalised `path`, and
    /// remembers it if it is a symlink.
    pub fn check(&mut self, path: &[u8], kind: EntryType) -> Result<(), UnsafeEntry> {
        if let Some(component) = path
            .split(|byte| *byte == b'/')
            .find(|component| component.starts_with(WHITEOUT_PREFIX))
        {
            return Err(UnsafeEntry::WhiteoutName {
                component: lossy(component),
            });
        }
        match kind {
            EntryType::Char => return Err(UnsafeEntry::Device { kind: "character" }),
            EntryType::Block => return Err(UnsafeEntry::Device { kind: "block" }),
            _ => {}
        }
        if let Some(symlink) = self.symlink_above(path) {
            return Err(UnsafeEntry::UnderSymlink {
                symlink: lossy(symlink),
            });
        }
        match kind {
            EntryType::Directory if self.symlinks.contains(path) => {
                return Err(UnsafeEntry::DirectoryOverSymlink);
            }
            EntryType::Symlink => {
                self.symlinks.insert(path.to_vec());
            }
            // A file in place of the symlink: nothing is under it any more.
            _ => {
                self.symlinks.remove(path);
            }
        }
        Ok(())
    }

    /// Checks the normalised `target` of a hard link: it must not lie
    /// under a symlink of the package (the target itself may be one).
    pub fn check_hard_link(&self, target: &[u8]) -> Result<(), UnsafeEntry> {
        match self.symlink_above(target) {
            Some(symlink) => Err(UnsafeEntry::HardLinkUnderSymlink {
                target: lossy(target),
                symlink: lossy(symlink),
            }),
            None => Ok(()),
        }
    }

    /// The first proper ancestor of `path` that is a symlink of the package.
    fn symlink_above<'a>(&self, path: &'a [u8]) -> Option<&'a [u8]> {
        if self.symlinks.is_empty() {
            return None;
        }
        path.iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'/')
            .map(|(slash, _)| &path[..slash])
            .find(|ancestor| self.symlinks.contains(*ancestor))
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names_and_devices_are_refused_fifos_kept() {
        let mut policy = EntryPolicy::new();
        for path in [
            ".wh.x",
            "etc/.wh.keepme",
            "etc/.wh..wh..opq",
            "etc/.wh.",
            "etc/.wh..",
            ".wh...",
            "etc/.wh.d/file",
        ] {
            let error = policy
                .check(path.as_bytes(), EntryType::Regular)
                .unwrap_err();
            assert!(
                matches!(error, UnsafeEntry::WhiteoutName { .. }),
                "{path}: {error}"
            );
        }
        for name in ["etc/x.wh.y", "etc/wh.x", "etc/..wh.x", "etc/.whx"] {
            policy.check(name.as_bytes(), EntryType::Regular).unwrap();
        }
        assert_eq!(
            policy.check(b"dev/null", EntryType::Char),
            Err(UnsafeEntry::Device { kind: "character" })
        );
        assert_eq!(
            policy.check(b"dev/sda", EntryType::Block),
            Err(UnsafeEntry::Device { kind: "block" })
        );
        policy.check(b"run/fifo", EntryType::Fifo).unwrap();
    }

    #[test]
    fn nothing_passes_under_a_symlink_of_the_package() {
        let mut policy = EntryPolicy::new();
        policy.check(b"etc", EntryType::Directory).unwrap();
        policy.check(b"etc/evil", EntryType::Symlink).unwrap();
        // The symlink itself may be replaced by a file, not by a directory.
        assert_eq!(
            policy.check(b"etc/evil", EntryType::Directory),
            Err(UnsafeEntry::DirectoryOverSymlink)
        );
        for kind in [
            EntryType::Regular,
            EntryType::Directory,
            EntryType::Symlink,
            EntryType::Link,
            EntryType::Fifo,
        ] {
            assert_eq!(
                policy.check(b"etc/evil/root/.bashrc", kind),
                Err(UnsafeEntry::UnderSymlink {
                    symlink: "etc/evil".into()
                }),
                "{kind:?}"
            );
        }
        assert!(matches!(
            policy.check_hard_link(b"etc/evil/shadow"),
            Err(UnsafeEntry::HardLinkUnderSymlink { .. })
        ));
        // Beside it, and the symlink itself as a hard link's target, pass.
        policy.check(b"etc/evil2/x", EntryType::Regular).unwrap();
        policy.check(b"etc/eviL/x", EntryType::Regular).unwrap();
        policy.check_hard_link(b"etc/evil").unwrap();
        // A file in its place: what follows is under a file, not a link.
        policy.check(b"etc/evil", EntryType::Regular).unwrap();
        policy.check(b"etc/evil/x", EntryType::Regular).unwrap();
    }
}
