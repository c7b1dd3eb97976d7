//! `file:///path`: a shared directory (an NFS or SMB mount, a directory on
//! a build host) as a remote cache.
//!
//! The layout is the one [`super`] describes: `blobs-v1/sha256/<hex>`,
//! `entries-v1/<bucket>/<hex>`, `pointers-v1/<name>`. Every write goes to a
//! hidden temp file (`.<name>.tmp-<random>`) in the destination's own
//! directory and is renamed into place, so a reader never sees a partial
//! file, and a pointer is replaced in one step. A writer killed mid-write
//! leaves its hidden temp file behind; readers never look at one. Files
//! are created with mode 0666 minus the umask, so a group-writable shared
//! directory stays usable by the whole team.
//!
//! Reading trusts nothing about what is at a path: only a regular file is
//! read (a FIFO, a device such as a link to `/dev/zero`, or a directory is
//! refused unread, without blocking on it), an envelope or pointer of more
//! than [`DOCUMENT_LIMIT`] bytes is refused unread, a blob is read up to
//! one byte past the size its signed entry gives (the caller cuts it off
//! there), and every read is abandoned past its [`Deadline`], as over
//! HTTP (a share on a slow network is a slow remote).

use super::{
    Backend, BlobRef, DOCUMENT_LIMIT, Deadline, LocalBlob, RemoteError, check_bucket, check_pointer,
};
use crate::hash::Sha256Digest;
use std::io::{self, Read as _, Write};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A remote cache in a directory.
#[derive(Debug)]
pub struct FileBackend {
    root: PathBuf,
    url: String,
    /// What a read's [`Deadline`] is scaled by.
    idle_timeout: Duration,
}

impl FileBackend {
    /// The remote at `file:///path`. The directory need not exist yet: it
    /// is created by the first write.
    pub fn open(url: &str) -> Result<FileBackend, RemoteError> {
        let invalid = |reason: &str| RemoteError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
        if parsed.scheme() != "file" {
            return Err(invalid("not a file:// URL"));
        }
        if parsed.host_str().is_some_and(|host| !host.is_empty()) {
            return Err(invalid(
                "a file:// URL names a local path (file:///path); mount a network share and name its path",
            ));
        }
        let root = parsed
            .to_file_path()
            .map_err(|()| invalid("not an absolute path"))?;
        Ok(FileBackend {
            root,
            url: url.trim_end_matches('/').to_owned(),
            idle_timeout: super::RemoteConfig::default().idle_timeout,
        })
    }

    /// Reads are given the [`Deadline`]s of this idle timeout.
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The directory holding the remote.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs-v1/sha256").join(digest.hex())
    }

    fn entry_path(&self, bucket: &str, key: &Sha256Digest) -> Result<PathBuf, RemoteError> {
        check_bucket(bucket)?;
        Ok(self.root.join("entries-v1").join(bucket).join(key.hex()))
    }

    fn pointer_path(&self, name: &str) -> Result<PathBuf, RemoteError> {
        check_pointer(name)?;
        Ok(self.root.join("pointers-v1").join(name))
    }

    /// Writes `path` from `fill` through a temp file beside it + rename.
    fn write_atomically(
        &self,
        path: &Path,
        fill: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
    ) -> Result<(), RemoteError> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| RemoteError::Io { path, source }
        };
        let dir = path.parent().expect("remote paths have a parent");
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tmp-"))
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(io_error(dir))?;
        fill(temp.as_file_mut()).map_err(io_error(temp.path()))?;
        temp.as_file().sync_data().map_err(io_error(temp.path()))?;
        temp.persist(path).map_err(|error| RemoteError::Io {
            path: path.to_owned(),
            source: error.error,
        })?;
        Ok(())
    }

    /// An envelope or pointer document, read whole: at most
    /// [`DOCUMENT_LIMIT`] bytes, within a document's deadline.
    fn read_small(&self, path: &Path) -> Result<Option<Vec<u8>>, RemoteError> {
        let deadline = Deadline::for_document(self.idle_timeout);
        let Some((file, size)) = open_regular(path)? else {
            return Ok(None);
        };
        let too_large = || RemoteError::TooLarge {
            url: path.display().to_string(),
            limit: DOCUMENT_LIMIT,
            what: "a signed document may hold",
        };
        if size > DOCUMENT_LIMIT {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // One byte past the limit tells a file that grew since.
        read_within(file.take(DOCUMENT_LIMIT + 1), path, &deadline, &mut bytes)?;
        if bytes.len() as u64 > DOCUMENT_LIMIT {
            return Err(too_large());
        }
        Ok(Some(bytes))
    }
}

/// Opens `path` for reading if it is a regular file (following symlinks):
/// the file and its size, `None` if nothing is there. The open does not
/// block (`O_NONBLOCK`: opening a FIFO for reading otherwise waits for a
/// writer) and the type is checked on the open file, so what is refused
/// is never read.
fn open_regular(path: &Path) -> Result<Option<(std::fs::File, u64)>, RemoteError> {
    let io_error = |source| RemoteError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(source)),
    };
    let metadata = file.metadata().map_err(io_error)?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "something else"
        };
        return Err(RemoteError::NotAFile {
            path: path.to_owned(),
            what,
        });
    }
    Ok(Some((file, metadata.len())))
}

/// Copies `reader` (a file at `path`) into `sink` until its end, checking
/// `deadline` before each chunk; the bytes copied.
fn read_within(
    mut reader: impl io::Read,
    path: &Path,
    deadline: &Deadline,
    sink: &mut dyn Write,
) -> Result<u64, RemoteError> {
    let shown = path.display().to_string();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut copied = 0u64;
    loop {
        deadline.check("read", &shown)?;
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(RemoteError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        sink.write_all(&buffer[..read])
            .map_err(|source| RemoteError::Sink {
                url: shown.clone(),
                source,
            })?;
        copied += read as u64;
    }
}

fn exists(path: &Path) -> Result<bool, RemoteError> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(metadata.is_file()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(RemoteError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Backend for FileBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn has_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<bool>, RemoteError> {
        digests
            .iter()
            .map(|digest| exists(&self.blob_path(digest)))
            .collect()
    }

    fn get_blob(&self, blob: &BlobRef, sink: &mut dyn Write) -> Result<Option<u64>, RemoteError> {
        let deadline = Deadline::for_size(self.idle_timeout, blob.size);
        let path = self.blob_path(&blob.digest);
        let Some((file, _)) = open_regular(&path)? else {
            return Ok(None);
        };
        // One byte past the size is enough to tell a longer file.
        read_within(
            file.take(blob.size.saturating_add(1)),
            &path,
            &deadline,
            sink,
        )
        .map(Some)
    }

    fn put_blob(&self, blob: &BlobRef, path: &Path) -> Result<(), RemoteError> {
        let destination = self.blob_path(&blob.digest);
        if exists(&destination)? {
            return Ok(());
        }
        let local = LocalBlob::new(blob, path);
        let mut reader = local.open()?;
        let written =
            self.write_atomically(&destination, |file| io::copy(&mut reader, file).map(drop));
        local.check()?;
        written
    }

    fn get_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<Option<Vec<u8>>, RemoteError> {
        self.read_small(&self.entry_path(bucket, key)?)
    }

    fn has_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<bool, RemoteError> {
        exists(&self.entry_path(bucket, key)?)
    }

    fn put_entry(
        &self,
        bucket: &str,
        key: &Sha256Digest,
        envelope: &[u8],
        _blobs: &[BlobRef],
    ) -> Result<(), RemoteError> {
        let path = self.entry_path(bucket, key)?;
        self.write_atomically(&path, |file| file.write_all(envelope))
    }

    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.read_small(&self.pointer_path(name)?)
    }

    fn put_pointer(&self, name: &str, document: &[u8]) -> Result<(), RemoteError> {
        let path = self.pointer_path(name)?;
        self.write_atomically(&path, |file| file.write_all(document))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_url_must_name_a_local_absolute_path() {
        assert!(FileBackend::open("file:///srv/xbuild-cache").is_ok());
        let error = FileBackend::open("file://server/share").unwrap_err();
        assert!(error.to_string().contains("names a local path"), "{error}");
    }

    #[test]
    fn a_corrupt_local_file_is_never_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/remote", dir.path().display());
        let backend = FileBackend::open(&url).unwrap();
        let local = dir.path().join("local");
        std::fs::write(&local, b"tampered").unwrap();
        let blob = BlobRef::new(Sha256Digest::of(b"original"), 8);
        let error = backend.put_blob(&blob, &local).unwrap_err();
        assert!(format!("{error:#?}").contains("hashes to"), "{error:#?}");
        assert_eq!(backend.has_blobs(&[blob.digest]).unwrap(), [false]);
        let blobs = dir.path().join("remote/blobs-v1/sha256");
        assert_eq!(
            std::fs::read_dir(blobs).unwrap().count(),
            0,
            "a temp file was left"
        );
    }
}
