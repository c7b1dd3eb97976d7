//! Temporary files and directories that a sweep can tell from abandoned
//! ones.
//!
//! Whoever makes a temporary file or directory in the cache holds an
//! exclusive `flock` on it for as long as it lives, on an open file of its
//! own, so another process, and another thread of the same process, is
//! kept out alike. A build killed mid-write leaves its entry behind,
//! unlocked: [`sweep`] (run by [`super::Cache::open`]) removes exactly the
//! entries it can lock, and leaves those still being written alone.
//!
//! Creating an entry and locking it are two steps, and a sweep may lock a
//! fresh entry in between. So the creator locks (waiting for the sweep if
//! need be) and then checks that the path still names the file it locked;
//! if the sweep removed it meanwhile, the creator starts again under a new
//! name. A sweep checks the same before it removes anything.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// A new temp file in `dir`, named `<prefix><random>`, locked for as long
/// as the returned value lives (and deleted on drop unless persisted).
pub fn locked_temp_file(dir: &Path, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
    loop {
        let temp = tempfile::Builder::new().prefix(prefix).tempfile_in(dir)?;
        temp.as_file().lock()?;
        if names(temp.path(), temp.as_file()) {
            return Ok(temp);
        }
        // A sweep removed it before we locked it: the name is free, and
        // possibly someone else's by now, so forget it without deleting.
        let _ = temp.into_temp_path().keep();
    }
}

/// A temporary directory, locked while it lives and removed on drop unless
/// it was [persisted](LockedTempDir::persist) or [kept](LockedTempDir::keep).
/// Trees that end up in the cache (toolchains, sysroots, sources) are built
/// in one beside their final place, so the final rename stays on one file
/// system and a crash leaves nothing at the final path.
#[derive(Debug)]
pub struct LockedTempDir {
    path: PathBuf,
    /// `Some` while the directory is ours to remove.
    lock: Option<File>,
}

impl LockedTempDir {
    /// A new directory beside `destination` (created parents included),
    /// named `.<file name>.partial-<random>`: hidden, so the sweep of the
    /// parent directory finds it if it is abandoned.
    pub fn beside(destination: &Path) -> io::Result<LockedTempDir> {
        let parent = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        fs_err::create_dir_all(parent)?;
        let name = destination
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        LockedTempDir::new_in(parent, &format!(".{name}.partial-"))
    }

    /// A new directory in `dir`, named `<prefix><random>`.
    pub fn new_in(dir: &Path, prefix: &str) -> io::Result<LockedTempDir> {
        loop {
            let path = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(dir)
                .map_err(|error| annotate(error, dir))?
                .keep();
            let lock = match File::open(&path) {
                Ok(lock) => lock,
                // Swept before we opened it.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(annotate(error, &path)),
            };
            lock.lock().map_err(|error| annotate(error, &path))?;
            if names(&path, &lock) {
                return Ok(LockedTempDir {
                    path,
                    lock: Some(lock),
                });
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the directory to `destination`, then gives up ownership:
    /// the rename happens under the lock, so no sweep can remove the tree
    /// in between. On error the directory is still owned (and removed on
    /// drop).
    pub fn persist(mut self, destination: &Path) -> io::Result<()> {
        fs_err::rename(&self.path, destination)?;
        self.lock = None;
        Ok(())
    }

    /// Gives up ownership: the directory stays where it is, unlocked, and
    /// the next sweep of the cache removes it. Meant for a directory that
    /// was renamed away already, or one kept for a person to inspect.
    pub fn keep(mut self) -> PathBuf {
        self.lock = None;
        std::mem::take(&mut self.path)
    }
}

impl Drop for LockedTempDir {
    fn drop(&mut self) {
        // Removed while still locked: a sweep cannot meet it half removed.
        if self.lock.is_some() {
            let _ = remove_tree(&self.path);
        }
    }
}

fn annotate(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{error}: {}", path.display()))
}

/// Whether `path` still names the file or directory `file` has open.
fn names(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(at_path), Ok(open)) => at_path.dev() == open.dev() && at_path.ino() == open.ino(),
        _ => false,
    }
}

/// Removes the abandoned temp entries of `dir`: every entry when `all`,
/// else those whose name starts with `.` (the temporaries beside the
/// entries of a tree bucket). An entry some process or thread holds locked
/// is being written, and left alone. Best effort: an entry that cannot be
/// removed stays for the next sweep. Returns how many were removed.
pub fn sweep(dir: &Path, all: bool) -> usize {
    sweep_matching(dir, |name| all || name.starts_with('.'))
}

/// [`sweep`] of the entries of `dir` whose name `matches` (outside the
/// cache: the temporaries beside an output).
pub fn sweep_matching(dir: &Path, matches: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if matches(&name.to_string_lossy()) && remove_if_abandoned(&entry.path()) {
            removed += 1;
        }
    }
    removed
}

fn remove_if_abandoned(path: &Path) -> bool {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return false;
    };
    // Only what xbuild makes: never open a FIFO or follow a symlink.
    if !(metadata.is_file() || metadata.is_dir()) {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    if file.try_lock().is_err() || !names(path, &file) {
        return false;
    }
    let result = if metadata.is_dir() {
        remove_tree(path)
    } else {
        std::fs::remove_file(path)
    };
    result.is_ok()
}

/// `remove_dir_all`, making directories writable first when a tree holds
/// read-only ones (unpacked packages may).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            std::fs::remove_dir_all(path)
        }
        result => result,
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if let Ok(metadata) = std::fs::symlink_metadata(&dir)
            && metadata.is_dir()
        {
            let mode = metadata.permissions().mode() | 0o700;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                pending.extend(entries.flatten().map(|entry| entry.path()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_locked_temp_file_survives_a_sweep_and_an_abandoned_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut live = locked_temp_file(dir.path(), ".part-").unwrap();
        live.write_all(b"being written").unwrap();
        // What a killed process leaves: a file nobody holds a lock on.
        let abandoned = dir.path().join(".part-abandoned");
        std::fs::write(&abandoned, b"half").unwrap();
        assert_eq!(sweep(dir.path(), true), 1);
        assert!(live.path().is_file(), "a live temp file was swept");
        assert!(!abandoned.exists(), "an abandoned temp file was kept");
        let kept = dir.path().join("done");
        live.persist(&kept).unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), b"being written");
    }

    #[test]
    fn a_locked_temp_dir_survives_a_sweep_from_another_thread() {
        let bucket = tempfile::tempdir().unwrap();
        let final_path = bucket.path().join("0123abcd");
        let live = LockedTempDir::beside(&final_path).unwrap();
        std::fs::write(live.path().join("file"), b"x").unwrap();
        let name = live
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(".0123abcd.partial-"), "{name}");
        let abandoned = bucket.path().join(".0123abcd.partial-old");
        std::fs::create_dir_all(abandoned.join("deep/er")).unwrap();
        let swept_path = bucket.path().to_owned();
        let removed = std::thread::spawn(move || sweep(&swept_path, false))
            .join()
            .unwrap();
        assert_eq!(removed, 1);
        assert!(
            live.path().join("file").is_file(),
            "a live temp dir was swept"
        );
        assert!(!abandoned.exists());
        live.persist(&final_path).unwrap();
        assert!(final_path.join("file").is_file());
        // Final entries are not hidden, and are never swept.
        assert_eq!(sweep(bucket.path(), false), 0);
        assert!(final_path.is_dir());
    }

    #[test]
    fn a_dropped_temp_dir_is_removed_and_a_kept_one_is_left_for_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let dropped = LockedTempDir::new_in(dir.path(), ".staging-").unwrap();
        let dropped_path = dropped.path().to_owned();
        drop(dropped);
        assert!(!dropped_path.exists());
        let kept = LockedTempDir::new_in(dir.path(), ".build-").unwrap();
        std::fs::create_dir(kept.path().join("ro")).unwrap();
        let kept_path = kept.keep();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&kept_path, std::fs::Permissions::from_mode(0o500)).unwrap();
        assert!(kept_path.is_dir());
        assert_eq!(sweep(dir.path(), true), 1);
        assert!(!kept_path.exists(), "a read-only abandoned tree was kept");
    }

    #[test]
    fn sweeps_and_creations_racing_never_lose_a_live_entry() {
        let dir = tempfile::tempdir().unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    sweep(dir.path(), true);
                }
            });
            for _ in 0..300 {
                let live = LockedTempDir::new_in(dir.path(), ".t-").unwrap();
                std::fs::write(live.path().join("f"), b"x").unwrap();
                assert!(live.path().join("f").is_file());
                let file = locked_temp_file(dir.path(), ".p-").unwrap();
                assert!(file.path().is_file());
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
}
