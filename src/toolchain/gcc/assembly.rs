//! Unpacking a compiler's packages into one directory: concurrently, each
//! as soon as it is at hand ([`Assembly::add`], from any thread), with the
//! tree the same as if they had been unpacked one after another in the
//! caller's order. Decompressing the packages is most of the work of
//! making a toolchain.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use super::{Programs, SKIPPED_HOST_PACKAGES, io_error, tree};
use crate::debian::deb::{DebArchive, DebControl};
use crate::debian::unpack::{SharedUnpack, UnpackError, unpack_deb};
use crate::parallel;
use crate::platform::Platform;
use crate::toolchain::ToolchainError;

/// A compiler's programs being assembled in an empty directory (one the
/// cache renames into place when it is complete): [`Assembly::add`] unpacks
/// one package into it (from any thread, concurrently with others);
/// [`Assembly::finish`] fixes the tree up and compiles a test file.
#[derive(Debug)]
pub struct Assembly {
    work: PathBuf,
    target: Platform,
    unpack: SharedUnpack,
    /// Unpacks that may run at once: one per core, since each keeps one
    /// busy; callers may add from more threads (downloads) than that.
    unpack_slots: Slots,
    added: Mutex<Added>,
}

/// What [`Assembly::add`] has seen so far.
#[derive(Debug, Default)]
struct Added {
    /// Every package by its order: its `.deb`, and whether it is unpacked
    /// (not one of [`SKIPPED_HOST_PACKAGES`]).
    debs: BTreeMap<usize, (PathBuf, bool)>,
    /// Two packages meet at one path: the concurrent unpack is abandoned
    /// and [`Assembly::finish`] unpacks everything again in order.
    overlap: bool,
}

impl Assembly {
    /// Starts assembling the programs for `target` in `work`, an empty
    /// directory.
    pub fn begin(target: &Platform, work: &Path) -> Assembly {
        Assembly {
            work: work.to_owned(),
            target: target.clone(),
            unpack: SharedUnpack::new(work),
            unpack_slots: Slots::new(parallel::cores()),
            added: Mutex::new(Added::default()),
        }
    }

    /// Unpacks `deb`, the package of rank `order` (ranks decide which
    /// package wins where two ship the same path: the higher one). Each
    /// `.deb` is read once: its control file, then its data.
    pub fn add(&self, order: usize, deb: &Path) -> Result<(), ToolchainError> {
        let control_error = |source| ToolchainError::Control {
            deb: deb.to_owned(),
            source,
        };
        let mut archive = DebArchive::open(deb).map_err(control_error)?;
        let package = package_of(&archive.control().map_err(control_error)?);
        let unpacked = !SKIPPED_HOST_PACKAGES.contains(&package.as_str());
        {
            let mut added = self.lock();
            added.debs.insert(order, (deb.to_owned(), unpacked));
            if !unpacked || added.overlap {
                return Ok(());
            }
        }
        let unpack_error = |source| ToolchainError::Unpack {
            deb: deb.to_owned(),
            source,
        };
        let tarball = archive.data().map_err(|source| {
            unpack_error(UnpackError::Open {
                archive: deb.to_owned(),
                source,
            })
        })?;
        let _slot = self.unpack_slots.take();
        match self.unpack.unpack_tar(order, tarball, deb) {
            Ok(_) => Ok(()),
            Err(UnpackError::Overlap { .. }) => {
                self.lock().overlap = true;
                Ok(())
            }
            Err(source) => Err(unpack_error(source)),
        }
    }

    /// [`Assembly::add`] of each of `debs` (of rank its index) on a few
    /// threads, largest first so that the longest unpack does not start
    /// last. Stops at the first error, and returns the one of the first
    /// package in order.
    pub fn add_all(&self, debs: &[PathBuf]) -> Result<(), ToolchainError> {
        let mut queue: Vec<usize> = (0..debs.len()).collect();
        queue.sort_by_cached_key(|&index| {
            Reverse(fs_err::metadata(&debs[index]).map_or(0, |metadata| metadata.len()))
        });
        let results = parallel::run_queue(&queue, parallel::cores(), |index| {
            self.add(index, &debs[index])
        });
        parallel::collect_in_order(results).map(|_| ())
    }

    /// Makes the unpacked packages relocatable programs and tests them.
    pub fn finish(self) -> Result<Programs, ToolchainError> {
        let target = self.target.clone();
        let work = self.unpacked()?;
        tree::finish_programs(&work, &target)
    }

    /// The directory with every package unpacked as if one after another
    /// in order.
    pub(super) fn unpacked(self) -> Result<PathBuf, ToolchainError> {
        let added = self
            .added
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if !added.overlap {
            self.unpack
                .finish()
                .map_err(|source| ToolchainError::Unpack {
                    deb: source.archive().to_owned(),
                    source,
                })?;
            return Ok(self.work);
        }
        // Which package wins depends on the order: unpack them all again,
        // one after another, the later replacing the earlier.
        empty_directory(&self.work)?;
        for (deb, unpacked) in added.debs.values() {
            if *unpacked {
                unpack_deb(deb, &self.work).map_err(|source| ToolchainError::Unpack {
                    deb: deb.clone(),
                    source,
                })?;
            }
        }
        Ok(self.work)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Added> {
        self.added.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes everything inside `directory`.
fn empty_directory(directory: &Path) -> Result<(), ToolchainError> {
    let entries = fs_err::read_dir(directory).map_err(|source| io_error(directory, source))?;
    for entry in entries {
        let path = entry.map_err(|source| io_error(directory, source))?.path();
        let removed = match fs_err::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => crate::cache::temp::remove_tree(&path),
            _ => std::fs::remove_file(&path),
        };
        removed.map_err(|source| io_error(&path, source))?;
    }
    Ok(())
}

/// The `Package` field of a `.deb`'s control file (empty when it has none
/// or does not parse: such a package is unpacked like any other).
fn package_of(control: &DebControl) -> String {
    crate::debian::control::Paragraph::parse(&control.control, "control")
        .ok()
        .flatten()
        .and_then(|paragraph| paragraph.get("Package").map(str::to_owned))
        .unwrap_or_default()
}

/// A counting semaphore.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A slot taken from [`Slots`], given back on drop.
struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(count: usize) -> Slots {
        Slots {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot and takes it.
    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}
