//! Crafted packages: a data tarball made entry by entry, with names and
//! link targets written raw into the tar headers (so neither dpkg-deb nor
//! the tar crate's own path checks stop a hostile entry from being made)
//! and device nodes made whoever runs the test, put into a fixture `.deb`
//! in place of the one dpkg-deb made ([`DebSpec::with_data_tar`]). The
//! control member, and so the signed `Packages` entry, stay dpkg-deb's.

use std::fs;
use std::io::Read as _;
use std::path::Path;

use tar::{EntryType, Header};

use super::archive::{DEB_EPOCH, DebSpec};

/// An uncompressed data tarball, entry by entry in the order given.
pub struct DataTar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for DataTar {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTar {
    /// An empty tarball (dpkg-deb's first entry, `./`, is not added).
    pub fn new() -> DataTar {
        DataTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    pub fn directory(self, path: &str) -> DataTar {
        self.entry(path, EntryType::Directory, 0o755, "", b"")
    }

    pub fn file(self, path: &str, contents: &[u8]) -> DataTar {
        self.entry(path, EntryType::Regular, 0o644, "", contents)
    }

    pub fn symlink(self, path: &str, target: &str) -> DataTar {
        self.entry(path, EntryType::Symlink, 0o777, target, b"")
    }

    /// A hard link to `target`, a path as the tarball spells it.
    pub fn hard_link(self, path: &str, target: &str) -> DataTar {
        self.entry(path, EntryType::Link, 0o644, target, b"")
    }

    /// A character or block device node (`kind`), major 8, minor 0.
    pub fn device(self, path: &str, kind: EntryType) -> DataTar {
        self.entry(path, kind, 0o666, "", b"")
    }

    pub fn fifo(self, path: &str) -> DataTar {
        self.entry(path, EntryType::Fifo, 0o644, "", b"")
    }

    fn entry(
        mut self,
        path: &str,
        kind: EntryType,
        mode: u32,
        link: &str,
        contents: &[u8],
    ) -> DataTar {
        let mut header = Header::new_gnu();
        let old = header.as_old_mut();
        assert!(path.len() < old.name.len() && link.len() < old.linkname.len());
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root").unwrap();
        header.set_groupname("root").unwrap();
        header.set_mtime(DEB_EPOCH);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            header.set_device_major(8).unwrap();
            header.set_device_minor(0).unwrap();
        }
        header.set_size(contents.len() as u64);
        header.set_cksum();
        self.builder.append(&header, contents).unwrap();
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

impl DebSpec {
    /// The package's data tarball is `data` instead of its files.
    pub fn with_data_tar(mut self, data: DataTar) -> DebSpec {
        self.data_tar = Some(data.into_bytes());
        self
    }
}

/// Rewrites the `.deb` at `deb`: its `data.tar*` member becomes the
/// uncompressed `data.tar` holding `data_tar`; the other members stay.
pub fn replace_data_tar(deb: &Path, data_tar: &[u8]) {
    let mut members = Vec::new();
    let mut archive = ar::Archive::new(fs::File::open(deb).unwrap());
    while let Some(member) = archive.next_entry() {
        let mut member = member.unwrap();
        let name = String::from_utf8(member.header().identifier().to_vec()).unwrap();
        let name = name.trim_end_matches('/').to_owned();
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).unwrap();
        if name.starts_with("data.tar") {
            members.push(("data.tar".to_owned(), data_tar.to_vec()));
        } else {
            members.push((name, bytes));
        }
    }
    assert!(
        members.iter().any(|(name, _)| name == "data.tar"),
        "no data member in {}",
        deb.display()
    );
    let mut builder = ar::Builder::new(fs::File::create(deb).unwrap());
    for (name, bytes) in &members {
        let mut header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        header.set_mode(0o100644);
        header.set_mtime(DEB_EPOCH);
        builder.append(&header, &bytes[..]).unwrap();
    }
}
