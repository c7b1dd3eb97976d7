//! A relocatable cross GCC made from Debian's cross packages
//! (`gcc-12-aarch64-linux-gnu`, `binutils-aarch64-linux-gnu`,
//! `libc6-dev-arm64-cross`, …) by unpacking them into one directory, never
//! by building it and never by installing them on the host.
//!
//! The unpacked packages work once three things are fixed:
//!
//! - **Host libraries.** The compiler and binutils are host programs that
//!   need libraries a minimal host lacks (isl, mpc, mpfr, gmp, jansson) and
//!   binutils' private `libbfd`/`libopcodes`/`libctf` builds, all unpacked
//!   under `usr/lib/<build multiarch>/`. The wrapper scripts in `bin/` put
//!   those directories on `LD_LIBRARY_PATH`. The host's own C library is
//!   used: packages of the build machine's glibc (`libc6`, …) are skipped.
//! - **A sysroot.** The `*-cross` packages install the target's C library
//!   under `usr/<triple>/`; they are moved into `sysroot/`, laid out like the
//!   target's root (`usr/include`, `usr/lib/<multiarch>`, the dynamic loader
//!   at its standard path), and the compiler and linker wrappers pass
//!   `--sysroot`, so the host's `/usr/include` and `/usr/lib` never leak in.
//!   `usr/<triple>/{include,lib}` become relative symlinks into the sysroot,
//!   which is where the relocated GCC looks for its C++ headers.
//! - **Absolute paths.** glibc's linker scripts (`libc.so`, …) name
//!   `/usr/<triple>/lib/…`; they are rewritten to `/usr/lib/<multiarch>/…`,
//!   which the linker resolves inside the sysroot. Absolute symlinks become
//!   relative ones inside the toolchain.
//!
//! Dynamic programs keep the target's standard interpreter (e.g.
//! `/lib/ld-linux-aarch64.so.1`), so they run in a Debian image of the
//! target, or here with `qemu-<arch> -L <sysroot>`.
//!
//! Decompressing the packages is most of the work, so they are unpacked
//! concurrently, each as soon as it is at hand ([`Assembly::add`], from any
//! thread), into one directory; the tree is the same as if they had been
//! unpacked one after another in the caller's order.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use crate::cache::LockedTempDir;
use serde::{Deserialize, Serialize};

use super::ToolchainError;
use crate::debian::deb::{DebArchive, DebControl};
use crate::debian::unpack::{SharedUnpack, UnpackError, unpack_deb};
use crate::platform::Platform;

/// Host libraries the compiler and binutils link against that a minimal
/// host may lack. The rest of their closure (`libc6`, `libstdc++6`,
/// `libgcc-s1`, `libcc1-0`, `libbinutils`, `binutils-common`, `gcc-12-base`)
/// comes with the resolver's closure of [`cross_packages`].
pub const HOST_LIBRARY_PACKAGES: [&str; 7] = [
    "libisl23",
    "libmpc3",
    "libmpfr6",
    "libgmp10",
    "libjansson4",
    "libzstd1",
    "zlib1g",
];

/// Packages of the build machine's C library: never unpacked, since a
/// second glibc on `LD_LIBRARY_PATH` under the host's dynamic loader breaks
/// programs. The host's must be at least as new as the packages need
/// (2.36 for bookworm).
pub const SKIPPED_HOST_PACKAGES: [&str; 4] = ["libc6", "libc-bin", "libc6-dev", "libc-dev-bin"];

/// Debian multiarch name of the machine xbuild runs on.
pub const BUILD_MULTIARCH: &str = if cfg!(target_arch = "aarch64") {
    "aarch64-linux-gnu"
} else {
    "x86_64-linux-gnu"
};

/// Name of the file in a toolchain root describing it.
pub(super) const MANIFEST_FILE: &str = "xbuild-toolchain.json";

/// Compiler drivers: their wrappers pass `--sysroot`.
const DRIVERS: [&str; 5] = ["gcc", "g++", "cpp", "c++", "gfortran"];

/// Linkers: their wrappers pass `--sysroot` too.
const LINKERS: [&str; 3] = ["ld", "ld.bfd", "ld.gold"];

/// Largest file considered as a possible linker script.
const MAXIMUM_LINKER_SCRIPT_SIZE: u64 = 64 * 1024;

/// The Debian packages to unpack for a cross GCC `gcc_version` (`"12"`) that
/// runs here and emits code for `target`: the roots of the closure (the
/// caller resolves the rest for the build machine's architecture). C and
/// C++ compilers, binutils, the target's glibc and kernel headers,
/// libgcc and libstdc++, and [`HOST_LIBRARY_PACKAGES`].
///
/// Debian has cross compilers for glibc targets only; for a musl target the
/// names do not exist and resolving them fails.
pub fn cross_packages(target: &Platform, gcc_version: &str) -> Vec<String> {
    let triple = package_triple(&target.gnu_triple);
    let arch = &target.debian_arch;
    let mut packages = vec![
        format!("gcc-{gcc_version}-{triple}"),
        format!("cpp-{gcc_version}-{triple}"),
        format!("g++-{gcc_version}-{triple}"),
        format!("binutils-{triple}"),
        format!("libgcc-{gcc_version}-dev-{arch}-cross"),
        format!("libstdc++-{gcc_version}-dev-{arch}-cross"),
        format!("libc6-dev-{arch}-cross"),
        format!("libc6-{arch}-cross"),
        format!("linux-libc-dev-{arch}-cross"),
    ];
    packages.extend(HOST_LIBRARY_PACKAGES.iter().map(|name| name.to_string()));
    packages
}

/// A GNU triple as Debian spells it in package names (`x86_64` → `x86-64`).
fn package_triple(gnu_triple: &str) -> String {
    gnu_triple.replace('_', "-")
}

/// An assembled cross toolchain. Every tool path is a wrapper script in
/// `root/bin/` that finds the rest relative to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossGcc {
    pub root: PathBuf,
    /// GNU triple of the target: `aarch64-linux-gnu`.
    pub triple: String,
    pub cc: PathBuf,
    /// The C++ compiler, when `g++` was among the packages.
    pub cxx: Option<PathBuf>,
    pub ar: PathBuf,
    pub ranlib: PathBuf,
    pub strip: PathBuf,
    /// The target's root file system as the compiler and linker see it.
    pub sysroot: PathBuf,
    /// Identity of the compiler for cache keys: `<triple>-gcc 12.2.0;` then
    /// the target-side packages with their versions, sorted. It names no
    /// path and nothing of the machine it was assembled on.
    pub version: String,
}

/// What `root/xbuild-toolchain.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub(super) triple: String,
    pub(super) version: String,
    pub(super) cxx: bool,
}

impl CrossGcc {
    pub(super) fn at(root: &Path, manifest: Manifest) -> CrossGcc {
        let tool = |name: &str| root.join("bin").join(format!("{}-{name}", manifest.triple));
        CrossGcc {
            root: root.to_owned(),
            cc: tool("gcc"),
            cxx: manifest.cxx.then(|| tool("g++")),
            ar: tool("ar"),
            ranlib: tool("ranlib"),
            strip: tool("strip"),
            sysroot: root.join("sysroot"),
            triple: manifest.triple,
            version: manifest.version,
        }
    }

    /// Opens a toolchain [`assemble`] made earlier (possibly at another path).
    pub fn open(root: &Path) -> Result<CrossGcc, ToolchainError> {
        let path = root.join(MANIFEST_FILE);
        let bytes = fs_err::read(&path).map_err(|source| ToolchainError::Io {
            path: path.clone(),
            source,
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|source| ToolchainError::Manifest { path, source })?;
        let gcc = CrossGcc::at(root, manifest);
        if !gcc.cc.is_file() {
            return Err(ToolchainError::Missing {
                root: root.to_owned(),
                triple: gcc.triple,
                what: "compiler wrapper (bin/<triple>-gcc)",
            });
        }
        Ok(gcc)
    }

    /// The wrapper of another tool: `tool("ld")`, `tool("nm")`, `tool("objcopy")`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.root
            .join("bin")
            .join(format!("{}-{name}", self.triple))
    }
}

/// Unpacks `debs` (see [`cross_packages`]) into a new directory `root` and
/// makes it a relocatable cross GCC for `target`: an [`Assembly`] of all of
/// them, unpacked on a few threads. Where two packages ship the same path,
/// the later one in `debs` wins.
pub fn assemble(
    debs: &[PathBuf],
    target: &Platform,
    root: &Path,
) -> Result<CrossGcc, ToolchainError> {
    let assembly = Assembly::begin(target, root)?;
    assembly.add_all(debs)?;
    assembly.finish()
}

/// A cross GCC being assembled. [`Assembly::begin`] makes a temporary
/// sibling of `root`; [`Assembly::add`] unpacks one package into it (from
/// any thread, concurrently with others); [`Assembly::finish`] fixes the
/// tree up and renames it into place once it has compiled and linked a
/// test program, so `root` is either complete or absent. Dropped before
/// `finish`, it leaves nothing behind.
#[derive(Debug)]
pub struct Assembly {
    root: PathBuf,
    target: Platform,
    temporary: LockedTempDir,
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
    /// `<package> <version>` of the target-side packages.
    identity: Vec<String>,
    /// Two packages meet at one path: the concurrent unpack is abandoned
    /// and [`Assembly::finish`] unpacks everything again in order.
    overlap: bool,
}

impl Assembly {
    /// Starts assembling the toolchain for `target` that will live at
    /// `root`, which must not exist.
    pub fn begin(target: &Platform, root: &Path) -> Result<Assembly, ToolchainError> {
        if fs_err::symlink_metadata(root).is_ok() {
            return Err(ToolchainError::RootExists {
                root: root.to_owned(),
            });
        }
        let temporary = temporary_sibling(root)?;
        Ok(Assembly {
            root: root.to_owned(),
            target: target.clone(),
            unpack: SharedUnpack::new(temporary.path()),
            unpack_slots: Slots::new(cores()),
            temporary,
            added: Mutex::new(Added::default()),
        })
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
        let (package, version) = package_of(&archive.control().map_err(control_error)?);
        let unpacked = !SKIPPED_HOST_PACKAGES.contains(&package.as_str());
        {
            let mut added = self.lock();
            added.debs.insert(order, (deb.to_owned(), unpacked));
            let package_triple = package_triple(&self.target.gnu_triple);
            if unpacked
                && (package.ends_with("-cross") || package.ends_with(&format!("-{package_triple}")))
            {
                added.identity.push(format!("{package} {version}"));
            }
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
        let threads = cores().min(debs.len());
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let errors = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let Some(&index) = queue.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        if let Err(error) = self.add(index, &debs[index]) {
                            failed.store(true, Ordering::Relaxed);
                            errors
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((index, error));
                        }
                    }
                });
            }
        });
        let errors = errors.into_inner().unwrap_or_else(PoisonError::into_inner);
        match errors.into_iter().min_by_key(|(index, _)| *index) {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }

    /// Makes the unpacked packages a relocatable cross GCC, tests it and
    /// renames it to `root`.
    pub fn finish(self) -> Result<CrossGcc, ToolchainError> {
        let (root, target) = (self.root.clone(), self.target.clone());
        let (temporary, identity) = self.unpacked()?;
        finish_tree(temporary, &target, &root, &identity)
    }

    /// The directory with every package unpacked as if one after another
    /// in order, and the sorted identity of the target-side packages.
    fn unpacked(self) -> Result<(LockedTempDir, Vec<String>), ToolchainError> {
        let added = self
            .added
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let temporary = if added.overlap {
            // Which package wins depends on the order: unpack them all
            // again, one after another, the later replacing the earlier.
            drop(self.temporary);
            let fresh = temporary_sibling(&self.root)?;
            for (deb, unpacked) in added.debs.values() {
                if *unpacked {
                    unpack_deb(deb, fresh.path()).map_err(|source| ToolchainError::Unpack {
                        deb: deb.clone(),
                        source,
                    })?;
                }
            }
            fresh
        } else {
            self.unpack
                .finish()
                .map_err(|source| ToolchainError::Unpack {
                    deb: source.archive().to_owned(),
                    source,
                })?;
            self.temporary
        };
        let mut identity = added.identity;
        identity.sort();
        Ok((temporary, identity))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Added> {
        self.added.lock().unwrap_or_else(PoisonError::into_inner)
    }
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

/// The number of cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |count| count.get())
}

/// A new private directory beside `root` to build it in, locked while it
/// lives (so a sweep of the cache leaves it alone), removed on drop.
fn temporary_sibling(root: &Path) -> Result<LockedTempDir, ToolchainError> {
    LockedTempDir::beside(root).map_err(|source| io_error(root, source))
}

/// Turns the packages unpacked in `temporary` into the toolchain at
/// `root`: sysroot, wrappers, manifest (with `identity`, the sorted
/// target-side packages), a test compile, then the rename.
fn finish_tree(
    temporary: LockedTempDir,
    target: &Platform,
    root: &Path,
    identity: &[String],
) -> Result<CrossGcc, ToolchainError> {
    let work = temporary.path();
    let triple = target.gnu_triple.as_str();
    let missing = |what| ToolchainError::Missing {
        root: root.to_owned(),
        triple: triple.to_owned(),
        what,
    };
    let major = driver_major_version(work, triple)
        .ok_or_else(|| missing("GCC driver (gcc-<version>-<triple>)"))?;
    build_sysroot(work, target).map_err(|error| match error {
        SysrootError::Missing(what) => missing(what),
        SysrootError::Io(path, source) => io_error(&path, source),
    })?;
    let has_cxx = write_wrappers(work, triple, &major)?;
    if !work.join("bin").join(format!("{triple}-as")).exists() {
        return Err(missing("assembler (binutils-<triple>)"));
    }

    let full_version = run_tool(
        &work.join("bin").join(format!("{triple}-gcc")),
        &["-dumpfullversion"],
        None,
    )?;
    let manifest = Manifest {
        triple: triple.to_owned(),
        version: format!(
            "{triple}-gcc {}; {}",
            full_version.trim(),
            identity.join(", ")
        ),
        cxx: has_cxx,
    };
    write_manifest_and_test(work, &manifest)?;
    // Temporary directories are private; a toolchain is readable by all.
    fs_err::set_permissions(work, std::fs::Permissions::from_mode(0o755))
        .map_err(|source| io_error(work, source))?;

    fs_err::rename(work, root).map_err(|source| {
        if fs_err::symlink_metadata(root).is_ok() {
            ToolchainError::RootExists {
                root: root.to_owned(),
            }
        } else {
            io_error(root, source)
        }
    })?;
    // Renamed away: nothing left for the guard to remove.
    let _ = temporary.keep();
    Ok(CrossGcc::at(root, manifest))
}

fn io_error(path: &Path, source: io::Error) -> ToolchainError {
    ToolchainError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The `Package` and `Version` fields of a `.deb`'s control file.
fn package_of(control: &DebControl) -> (String, String) {
    let field = |wanted: &str| {
        control.control.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_owned())
        })
    };
    (
        field("Package").unwrap_or_default(),
        field("Version").unwrap_or_default(),
    )
}

/// The major version of the newest `usr/bin/<triple>-gcc-<major>` driver.
fn driver_major_version(work: &Path, triple: &str) -> Option<String> {
    let prefix = format!("{triple}-gcc-");
    let entries = fs_err::read_dir(work.join("usr/bin")).ok()?;
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let major = name.strip_prefix(&prefix)?;
            major.parse::<u32>().ok()
        })
        .max()
        .map(|major| major.to_string())
}

enum SysrootError {
    Missing(&'static str),
    Io(PathBuf, io::Error),
}

impl From<(PathBuf, io::Error)> for SysrootError {
    fn from((path, source): (PathBuf, io::Error)) -> Self {
        SysrootError::Io(path, source)
    }
}

/// Moves `usr/<triple>/{include,lib}` into `sysroot/`, links them back,
/// makes absolute symlinks relative, rewrites linker scripts and links the
/// dynamic loader at the target's standard path.
fn build_sysroot(work: &Path, target: &Platform) -> Result<(), SysrootError> {
    let triple = &target.gnu_triple;
    let multiarch = &target.multiarch;
    let tool_directory = work.join("usr").join(triple);
    let sysroot = work.join("sysroot");
    let include = sysroot.join("usr/include");
    let library = sysroot.join("usr/lib").join(multiarch);
    let with_path = |path: &Path| {
        let path = path.to_owned();
        move |source| (path, source)
    };
    fs_err::create_dir_all(sysroot.join("usr/lib")).map_err(with_path(&sysroot))?;
    for (from, to, link, what) in [
        (
            "include",
            &include,
            "../../sysroot/usr/include".to_owned(),
            "C library headers (libc6-dev-<arch>-cross)",
        ),
        (
            "lib",
            &library,
            format!("../../sysroot/usr/lib/{multiarch}"),
            "C library (libc6-<arch>-cross)",
        ),
    ] {
        let from = tool_directory.join(from);
        if !fs_err::symlink_metadata(&from).is_ok_and(|metadata| metadata.is_dir()) {
            return Err(SysrootError::Missing(what));
        }
        fs_err::rename(&from, to).map_err(with_path(&from))?;
        fs_err::os::unix::fs::symlink(&link, &from).map_err(with_path(&from))?;
    }
    for (path, what) in [
        (
            include.join("stdio.h"),
            "C library headers (libc6-dev-<arch>-cross)",
        ),
        (
            library.join("crt1.o"),
            "C start files (libc6-dev-<arch>-cross)",
        ),
        (library.join("libc.so.6"), "C library (libc6-<arch>-cross)"),
    ] {
        if !path.exists() {
            return Err(SysrootError::Missing(what));
        }
    }

    let mut symlinks = Vec::new();
    let mut files = Vec::new();
    walk(work, &mut symlinks, &mut files)?;
    let old_prefix = format!("/usr/{triple}/lib/");
    let new_prefix = format!("/usr/lib/{multiarch}/");
    for link in symlinks {
        let target_path = fs_err::read_link(&link).map_err(with_path(&link))?;
        if !target_path.is_absolute() {
            continue;
        }
        let resolved = resolve_absolute(work, &sysroot, &link, &target_path, triple, multiarch);
        let parent = link.parent().unwrap_or(work);
        let relative = relative_path(parent, &resolved);
        fs_err::remove_file(&link).map_err(with_path(&link))?;
        fs_err::os::unix::fs::symlink(&relative, &link).map_err(with_path(&link))?;
    }
    for file in files {
        rewrite_linker_script(&file, &old_prefix, &new_prefix)?;
    }

    if let Some(interpreter) = &target.elf_interpreter {
        let interpreter = Path::new(interpreter);
        let Some(file_name) = interpreter.file_name() else {
            return Ok(());
        };
        if !library.join(file_name).exists() {
            return Err(SysrootError::Missing("dynamic loader (libc6-<arch>-cross)"));
        }
        let inside = sysroot.join(interpreter.strip_prefix("/").unwrap_or(interpreter));
        if fs_err::symlink_metadata(&inside).is_err() {
            let parent = inside.parent().unwrap_or(&sysroot);
            fs_err::create_dir_all(parent).map_err(with_path(parent))?;
            let relative = relative_path(parent, &library.join(file_name));
            fs_err::os::unix::fs::symlink(&relative, &inside).map_err(with_path(&inside))?;
        }
    }
    Ok(())
}

/// Where an absolute symlink target points once the toolchain is its own
/// root: inside the sysroot for links in it, and for the cross packages'
/// `/usr/<triple>/{lib,include}`; inside `work` otherwise.
fn resolve_absolute(
    work: &Path,
    sysroot: &Path,
    link: &Path,
    target: &Path,
    triple: &str,
    multiarch: &str,
) -> PathBuf {
    let normalised = normalise(target);
    let tool_library = Path::new("usr").join(triple).join("lib");
    let tool_include = Path::new("usr").join(triple).join("include");
    if let Ok(rest) = normalised.strip_prefix(&tool_library) {
        return sysroot.join("usr/lib").join(multiarch).join(rest);
    }
    if let Ok(rest) = normalised.strip_prefix(&tool_include) {
        return sysroot.join("usr/include").join(rest);
    }
    if link.starts_with(sysroot) {
        sysroot.join(normalised)
    } else {
        work.join(normalised)
    }
}

/// An absolute path as a relative one with `.` and `..` folded, never above
/// the root.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The relative path from directory `from` to `to` (both absolute, without
/// `..`, under one root).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component);
    }
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    relative
}

/// Every symlink and regular file under `directory`, not following symlinks.
fn walk(
    directory: &Path,
    symlinks: &mut Vec<PathBuf>,
    files: &mut Vec<PathBuf>,
) -> Result<(), (PathBuf, io::Error)> {
    let entries = fs_err::read_dir(directory).map_err(|error| (directory.to_owned(), error))?;
    for entry in entries {
        let entry = entry.map_err(|error| (directory.to_owned(), error))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|error| (path.clone(), error))?;
        if kind.is_symlink() {
            symlinks.push(path);
        } else if kind.is_dir() {
            walk(&path, symlinks, files)?;
        } else if kind.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// Rewrites `old_prefix` to `new_prefix` in `path` if it is a small text
/// file that reads like a GNU ld script (`GROUP (…)`, `INPUT (…)`).
fn rewrite_linker_script(
    path: &Path,
    old_prefix: &str,
    new_prefix: &str,
) -> Result<(), SysrootError> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    if !name.contains(".so") && !name.ends_with(".a") {
        return Ok(());
    }
    let metadata = fs_err::metadata(path).map_err(|error| (path.to_owned(), error))?;
    if metadata.len() > MAXIMUM_LINKER_SCRIPT_SIZE {
        return Ok(());
    }
    let bytes = fs_err::read(path).map_err(|error| (path.to_owned(), error))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(());
    };
    if !(text.contains("GROUP") || text.contains("INPUT")) || !text.contains(old_prefix) {
        return Ok(());
    }
    let rewritten = text.replace(old_prefix, new_prefix);
    fs_err::write(path, rewritten).map_err(|error| (path.to_owned(), error))?;
    Ok(())
}

/// Writes `bin/<triple>-<tool>` for every `usr/bin/<triple>-<tool>[-<major>]`
/// and the `cc`/`c++` aliases. Returns whether there is a C++ compiler.
fn write_wrappers(work: &Path, triple: &str, major: &str) -> Result<bool, ToolchainError> {
    let usr_bin = work.join("usr/bin");
    let prefix = format!("{triple}-");
    let version_suffix = format!("-{major}");
    // Tool name → real program file name; unversioned names sort first and win.
    let mut tools = BTreeMap::new();
    let mut names: Vec<String> = fs_err::read_dir(&usr_bin)
        .map_err(|source| io_error(&usr_bin, source))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let Some(tool) = name.strip_prefix(&prefix) else {
            continue;
        };
        let tool = tool
            .strip_suffix(&version_suffix)
            .unwrap_or(tool)
            .to_owned();
        tools.entry(tool).or_insert(name);
    }
    for (alias, of) in [("cc", "gcc"), ("c++", "g++")] {
        if let Some(program) = tools.get(of).cloned() {
            tools.entry(alias.to_owned()).or_insert(program);
        }
    }
    let bin = work.join("bin");
    fs_err::create_dir_all(&bin).map_err(|source| io_error(&bin, source))?;
    for (tool, program) in &tools {
        let tool_name = tool.as_str();
        let flags =
            if DRIVERS.contains(&tool_name) || LINKERS.contains(&tool_name) || tool_name == "cc" {
                " --sysroot=\"$root/sysroot\""
            } else {
                ""
            };
        let script = format!(
            "#!/bin/sh\n\
             # Written by xbuild: runs usr/bin/{program} of the toolchain this\n\
             # script belongs to, wherever that directory is.\n\
             root=$(readlink -f -- \"$0\") || exit 127\n\
             root=${{root%/*}}\n\
             root=${{root%/*}}\n\
             LD_LIBRARY_PATH=\"$root/usr/lib/{BUILD_MULTIARCH}:$root/lib/{BUILD_MULTIARCH}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n\
             export LD_LIBRARY_PATH\n\
             exec \"$root/usr/bin/{program}\"{flags} \"$@\"\n"
        );
        let path = bin.join(format!("{prefix}{tool}"));
        fs_err::write(&path, script).map_err(|source| io_error(&path, source))?;
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|source| io_error(&path, source))?;
    }
    Ok(tools.contains_key("g++"))
}

/// Runs `program` with `arguments` (and `input` on stdin) and returns its
/// standard output, or an error carrying its standard error.
pub(super) fn run_tool(
    program: &Path,
    arguments: &[&str],
    input: Option<&str>,
) -> Result<String, ToolchainError> {
    let mut command = Command::new(program);
    command
        .args(arguments)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| ToolchainError::Run {
        program: program.to_owned(),
        source,
    })?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(input.as_bytes())
            .map_err(|source| ToolchainError::Run {
                program: program.to_owned(),
                source,
            })?;
    }
    let output = child
        .wait_with_output()
        .map_err(|source| ToolchainError::Run {
            program: program.to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(ToolchainError::Failed {
            program: program.to_owned(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Writes the description of the toolchain in `root` and smoke-tests it:
/// the last step before a toolchain is moved into the cache.
pub(super) fn write_manifest_and_test(
    root: &Path,
    manifest: &Manifest,
) -> Result<(), ToolchainError> {
    let manifest_path = root.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(manifest).expect("a manifest always serializes");
    fs_err::write(&manifest_path, json).map_err(|source| io_error(&manifest_path, source))?;
    smoke_test(&CrossGcc::at(root, manifest.clone()))
}

/// Compiles and links (dynamically) a trivial C program, so that a missing
/// host library or a broken sysroot fails assembly rather than a build.
pub(super) fn smoke_test(gcc: &CrossGcc) -> Result<(), ToolchainError> {
    let output = gcc.root.join(".xbuild-smoke-test");
    let output_argument = output.to_string_lossy().into_owned();
    let result = run_tool(
        &gcc.cc,
        &["-x", "c", "-", "-o", &output_argument],
        Some("#include <stdio.h>\nint main(void) { return puts(\"ok\") < 0; }\n"),
    );
    let _ = fs_err::remove_file(&output);
    result.map(|_| ())
}

#[cfg(test)]
#[path = "gcc_tests.rs"]
mod tests;
