//! A cross GCC built from source, for (build, target) pairs Debian ships no
//! cross compiler for — today the `*-linux-musl` targets, whose C code needs
//! a compiler, binutils and C library of their own.
//!
//! Everything it is built from is a verified Debian artifact:
//! - `binutils-source` and `gcc-<N>-source` (architecture `all`): the
//!   upstream tarballs Debian builds its compilers from, used unpatched;
//! - `libgmp-dev`, `libmpfr-dev`, `libmpc-dev` of the build machine: only
//!   their headers and static archives, so the compiler links them in and
//!   needs no shared library beside the host's C and C++ runtime;
//! - `linux-libc-dev` of the target architecture: the kernel headers;
//! - the C library's Debian source package (`musl`).
//!
//! The build is the classic three steps: binutils; GCC's driver, `cc1` and
//! a static `libgcc` against the C library's headers; then the C library,
//! compiled by that GCC. Everything is configured with a placeholder
//! prefix ([`PREFIX`]) and the sysroot inside it, which makes GCC and the
//! linker relocatable (both find the sysroot relative to their own
//! location), then installed into a scratch directory and moved into the
//! tree the cache renames into place once a test program has compiled and
//! linked. Only C is built; programs
//! link statically by default through the C build recipes.
//!
//! It takes tens of minutes on a small machine, so the pipeline never starts
//! it unless asked (`--allow-toolchain-build`); the result is cached by the
//! pair and the digests of all inputs, and shared like any toolchain.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::gcc::{BUILD_MULTIARCH, CrossGcc, Manifest, run_tool, write_manifest_and_test};
use super::{CopyFiles, ToolchainError, copy_tree, relativize_symlinks, walk_entries};
use crate::cache::LockedTempDir;
use crate::debian::unpack::unpack_deb;
use crate::platform::{Libc, Platform};

/// Version of the recipe below: part of the toolchain's cache key.
pub const RECIPE: &str = "binutils-gcc-c-musl-static-libgcc-v1";

/// The prefix the toolchain is configured with. It never exists: the tree
/// is installed with `DESTDIR` and used from wherever it lands.
const PREFIX: &str = "/xbuild-toolchain";

/// Lines of the build log quoted in an error.
const LOG_TAIL_LINES: usize = 25;

/// The verified inputs of a toolchain build (local paths in the cache).
#[derive(Debug, Clone)]
pub struct SourceInputs {
    /// The `binutils-source` package.
    pub binutils: PathBuf,
    /// The `gcc-<N>-source` package.
    pub gcc: PathBuf,
    /// `libgmp-dev`, `libmpfr-dev`, `libmpc-dev` for the build machine.
    pub host_libraries: Vec<PathBuf>,
    /// `linux-libc-dev` for the target architecture.
    pub kernel_headers: PathBuf,
    /// The unpacked C library source tree (read only: built out of tree).
    pub libc: PathBuf,
    /// `name version` of every input, for the toolchain's identity.
    pub identity: Vec<String>,
}

/// The Debian binary packages a source build of a toolchain needs for the
/// build machine (without their dependencies: only their files are used).
pub fn host_packages(gcc_version: &str) -> Vec<String> {
    vec![
        "binutils-source".to_owned(),
        format!("gcc-{gcc_version}-source"),
        "libgmp-dev".to_owned(),
        "libmpfr-dev".to_owned(),
        "libmpc-dev".to_owned(),
    ]
}

/// The Debian source package of the target's C library.
pub fn libc_source_package(target: &Platform) -> Option<&'static str> {
    match target.libc {
        Libc::Musl => Some("musl"),
        Libc::Gnu => None,
    }
}

/// musl's name for the target's CPU family (`ARCH=` of its Makefile).
pub fn musl_arch(gnu_triple: &str) -> Option<&'static str> {
    let cpu = gnu_triple.split('-').next().unwrap_or_default();
    Some(match cpu {
        "aarch64" => "aarch64",
        "x86_64" => "x86_64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "powerpc64" | "powerpc64le" => "powerpc64",
        "powerpc" => "powerpc",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" | "mips64el" => "mips64",
        "mips" | "mipsel" => "mips",
        cpu if cpu.starts_with("arm") => "arm",
        _ => return None,
    })
}

/// Builds a cross GCC for `target` from `inputs` into `into`, an empty
/// directory (the cache renames it into place), with `jobs` parallel
/// compiler processes, in the scratch directory `scratch` (sources,
/// objects, the staged install; removed when done, or kept for inspection
/// with [`KEEP_FAILED_ENV`] when the build fails). Build output goes to
/// `log` (kept after the build; quoted in the error when a step fails).
pub fn build(
    inputs: &SourceInputs,
    target: &Platform,
    into: &Path,
    scratch: LockedTempDir,
    jobs: usize,
    log: &Path,
) -> Result<CrossGcc, ToolchainError> {
    let triple = target.gnu_triple.as_str();
    let arch = musl_arch(triple).ok_or_else(|| ToolchainError::Missing {
        root: into.to_owned(),
        triple: triple.to_owned(),
        what: "musl port for this CPU",
    })?;
    check_host_tools(&std::env::var_os("PATH").unwrap_or_default())?;
    if let Some(directory) = log.parent() {
        fs_err::create_dir_all(directory).map_err(|source| io_error(directory, source))?;
    }
    let result = build_in(inputs, target, into, jobs, log, arch, scratch.path());
    if result.is_err() && std::env::var_os(KEEP_FAILED_ENV).is_some() {
        let kept = scratch.keep();
        let _ = append_log(
            log,
            &format!(
                "build directory kept ({KEEP_FAILED_ENV}) until the next xbuild run on this cache: {}",
                kept.display()
            ),
        );
    }
    result
}

/// Set, a failed build's scratch directory is kept for inspection.
pub const KEEP_FAILED_ENV: &str = "XBUILD_KEEP_FAILED_TOOLCHAIN_BUILD";

fn append_log(log: &Path, text: &str) -> Result<(), ToolchainError> {
    use std::io::Write;
    let mut file = fs_err::OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|source| io_error(log, source))?;
    writeln!(file, "xbuild: {text}").map_err(|source| io_error(log, source))
}

/// The steps of [`build`] in the scratch directory `work`.
fn build_in(
    inputs: &SourceInputs,
    target: &Platform,
    into: &Path,
    jobs: usize,
    log: &Path,
    arch: &str,
    work: &Path,
) -> Result<CrossGcc, ToolchainError> {
    let triple = target.gnu_triple.as_str();
    let mut builder = Builder {
        work: work.to_owned(),
        log: log.to_owned(),
        jobs: jobs.max(1),
        stage: work.join("install"),
        path: std::env::var_os("PATH").unwrap_or_default(),
        started: Instant::now(),
    };
    builder.start_log(triple)?;
    let staged_root = builder.stage.join(PREFIX.trim_start_matches('/'));
    let sysroot = staged_root.join("sysroot");

    // Sources.
    let binutils_src = builder.unpack_source_tarball(&inputs.binutils, "binutils-")?;
    keep_generated_sources(&binutils_src)?;
    let gcc_src = builder.unpack_source_tarball(&inputs.gcc, "gcc-")?;
    let host = work.join("host");
    for deb in &inputs.host_libraries {
        unpack_deb(deb, &host).map_err(|source| ToolchainError::Unpack {
            deb: deb.clone(),
            source,
        })?;
    }
    remove_shared_libraries(&host.join("usr/lib").join(BUILD_MULTIARCH))?;

    // Kernel and C library headers, which libgcc is compiled against.
    let kernel = work.join("kernel");
    unpack_deb(&inputs.kernel_headers, &kernel).map_err(|source| ToolchainError::Unpack {
        deb: inputs.kernel_headers.clone(),
        source,
    })?;
    install_kernel_headers(&kernel.join("usr/include"), &target.multiarch, &sysroot)?;
    let libc_build = work.join("build-libc");
    builder.make_dir(&libc_build)?;
    let srcdir = format!("srcdir={}", inputs.libc.display());
    let makefile = inputs.libc.join("Makefile");
    builder.step(
        "install the C library's headers",
        Command::new("make")
            .current_dir(&libc_build)
            .arg("-f")
            .arg(&makefile)
            .arg(&srcdir)
            .arg(format!("ARCH={arch}"))
            .arg("prefix=/usr")
            .arg(destdir(&sysroot))
            .arg("install-headers"),
    )?;

    // binutils.
    let with_sysroot = format!("--with-sysroot={PREFIX}/sysroot");
    let common = [
        format!("--target={triple}"),
        format!("--prefix={PREFIX}"),
        with_sysroot.clone(),
        "--disable-nls".to_owned(),
        "--disable-werror".to_owned(),
        "--disable-multilib".to_owned(),
    ];
    let binutils_build = work.join("build-binutils");
    builder.make_dir(&binutils_build)?;
    builder.step(
        "configure binutils",
        Command::new(binutils_src.join("configure"))
            .current_dir(&binutils_build)
            .args(&common)
            .args([
                "--disable-gdb",
                "--disable-gdbserver",
                "--disable-gprofng",
                "--disable-sim",
                "--disable-readline",
                "--disable-libdecnumber",
                "--disable-plugins",
                "--enable-deterministic-archives",
                "--without-zstd",
            ]),
    )?;
    builder.make(&binutils_build, "build binutils", &[])?;
    builder.make(
        &binutils_build,
        "install binutils",
        &["install".to_owned(), destdir(&builder.stage)],
    )?;
    // GCC's build runs the new assembler and linker by their target names.
    let mut path = std::ffi::OsString::from(staged_root.join("bin"));
    path.push(":");
    path.push(&builder.path);
    builder.path = path;

    // GCC: the driver, cc1 and a static libgcc, C only.
    let host_include = host.join("usr/include");
    let host_lib = host.join("usr/lib").join(BUILD_MULTIARCH);
    let gcc_build = work.join("build-gcc");
    builder.make_dir(&gcc_build)?;
    builder.step(
        "configure gcc",
        Command::new(gcc_src.join("configure"))
            .current_dir(&gcc_build)
            .args(&common)
            .arg(format!("--with-build-sysroot={}", sysroot.display()))
            .args([
                "--enable-languages=c",
                "--disable-shared",
                "--disable-bootstrap",
                "--disable-lto",
                "--disable-plugin",
                "--disable-libsanitizer",
                "--disable-libssp",
                "--disable-libquadmath",
                "--disable-libgomp",
                "--disable-libatomic",
                "--disable-libitm",
                "--disable-libvtv",
                "--disable-libstdcxx",
                "--without-isl",
                "--without-zstd",
            ])
            .arg(format!(
                "--with-gmp-include={}",
                host_include.join(BUILD_MULTIARCH).display()
            ))
            .arg(format!("--with-gmp-lib={}", host_lib.display()))
            .arg(format!("--with-mpfr-include={}", host_include.display()))
            .arg(format!("--with-mpfr-lib={}", host_lib.display()))
            .arg(format!("--with-mpc-include={}", host_include.display()))
            .arg(format!("--with-mpc-lib={}", host_lib.display())),
    )?;
    builder.make(
        &gcc_build,
        "build gcc",
        &["all-gcc".to_owned(), "all-target-libgcc".to_owned()],
    )?;
    // Debian's GCC tarball has no GFDL manuals, so the check that the
    // target hooks' documentation is current (`s-tm-texi`, run by
    // install's info step) would fail: it is marked done. No manual is
    // installed anyway.
    let stamp = gcc_build.join("gcc/s-tm-texi");
    fs_err::write(&stamp, "").map_err(|source| io_error(&stamp, source))?;
    builder.make(
        &gcc_build,
        "install gcc",
        &[
            "install-gcc".to_owned(),
            "install-target-libgcc".to_owned(),
            destdir(&builder.stage),
        ],
    )?;

    // The C library, compiled by the new GCC.
    let cc = staged_root.join("bin").join(format!("{triple}-gcc"));
    builder.step(
        "configure the C library",
        Command::new(inputs.libc.join("configure"))
            .current_dir(&libc_build)
            .arg(format!("--target={triple}"))
            .arg("--prefix=/usr")
            .arg("--syslibdir=/lib")
            .arg(format!("CC={}", cc.display()))
            .arg(format!(
                "CROSS_COMPILE={}",
                staged_root.join("bin").join(format!("{triple}-")).display()
            )),
    )?;
    builder.make(&libc_build, "build the C library", &[])?;
    builder.make(
        &libc_build,
        "install the C library",
        &["install".to_owned(), destdir(&sysroot)],
    )?;

    // Tidy: absolute symlinks (musl's dynamic loader) made relative, docs
    // dropped; then identity, smoke test and the move into place.
    relativize_symlinks(&sysroot, &sysroot)?;
    for docs in ["share/man", "share/info", "share/doc"] {
        let path = staged_root.join(docs);
        if path.exists() {
            fs_err::remove_dir_all(&path).map_err(|source| io_error(&path, source))?;
        }
    }
    let full_version = run_tool(&cc, &["-dumpfullversion"], None)?;
    let mut identity = inputs.identity.clone();
    identity.sort();
    let manifest = Manifest {
        triple: triple.to_owned(),
        version: format!(
            "{triple}-gcc {}; built from source ({RECIPE}): {}",
            full_version.trim(),
            identity.join(", ")
        ),
        cxx: false,
    };
    write_manifest_and_test(&staged_root, &manifest)?;
    builder.note(&format!(
        "toolchain built in {:.0} s",
        builder.started.elapsed().as_secs_f64()
    ))?;
    for entry in fs_err::read_dir(&staged_root).map_err(|source| io_error(&staged_root, source))? {
        let from = entry
            .map_err(|source| io_error(&staged_root, source))?
            .path();
        let to = into.join(from.file_name().expect("directory entries have names"));
        fs_err::rename(&from, &to).map_err(|source| io_error(&to, source))?;
    }
    Ok(CrossGcc::at(into, manifest))
}

/// The build machine's programs the build runs: its C and C++ compilers
/// (GCC is written in C++), make, and flex and bison (Debian's binutils
/// tarball leaves out the linker's generated grammar). Checked first, so a
/// missing one is named before anything is unpacked.
fn check_host_tools(path: &std::ffi::OsStr) -> Result<(), ToolchainError> {
    for (tool, package) in [
        ("gcc", "gcc"),
        ("g++", "g++"),
        ("make", "make"),
        ("flex", "flex"),
        ("bison", "bison"),
    ] {
        let result = Command::new(tool)
            .env("PATH", path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let reason = match result {
            Ok(status) if status.success() => continue,
            Ok(status) => format!("`{tool} --version` failed: {status}"),
            Err(error) => error.to_string(),
        };
        return Err(ToolchainError::HostTool {
            tool,
            package,
            reason,
        });
    }
    Ok(())
}

fn destdir(path: &Path) -> String {
    format!("DESTDIR={}", path.display())
}

fn io_error(path: &Path, source: io::Error) -> ToolchainError {
    ToolchainError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Runs the steps of a build with their output appended to one log.
struct Builder {
    work: PathBuf,
    log: PathBuf,
    jobs: usize,
    /// `DESTDIR` of the toolchain's install.
    stage: PathBuf,
    /// `PATH` for every step.
    path: std::ffi::OsString,
    started: Instant,
}

impl Builder {
    fn start_log(&self, triple: &str) -> Result<(), ToolchainError> {
        fs_err::write(
            &self.log,
            format!("xbuild: building a cross GCC for {triple} ({RECIPE})\n"),
        )
        .map_err(|source| io_error(&self.log, source))
    }

    fn note(&self, text: &str) -> Result<(), ToolchainError> {
        append_log(&self.log, text)
    }

    fn make_dir(&self, path: &Path) -> Result<(), ToolchainError> {
        fs_err::create_dir_all(path).map_err(|source| io_error(path, source))
    }

    /// `make -j<jobs> MAKEINFO=true <arguments>` in `directory` (the docs
    /// are not built: no `makeinfo` needed).
    fn make(
        &self,
        directory: &Path,
        step: &str,
        arguments: &[String],
    ) -> Result<(), ToolchainError> {
        self.step(
            step,
            Command::new("make")
                .current_dir(directory)
                .arg(format!("-j{}", self.jobs))
                .arg("MAKEINFO=true")
                .args(arguments),
        )
    }

    /// Runs one step with a fixed environment, its output appended to the
    /// log; a failure quotes the log's last lines.
    fn step(&self, step: &str, command: &mut Command) -> Result<(), ToolchainError> {
        self.note(&format!("step: {step}"))?;
        let started = Instant::now();
        let output = fs_err::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .map_err(|source| io_error(&self.log, source))?
            .into_parts()
            .0;
        let errors = output
            .try_clone()
            .map_err(|source| io_error(&self.log, source))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(output))
            .stderr(Stdio::from(errors))
            .env("PATH", &self.path)
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env("CFLAGS", "-O2 -g0")
            .env("CXXFLAGS", "-O2 -g0")
            .env_remove("CC")
            .env_remove("CXX")
            .env_remove("LDFLAGS")
            .env_remove("CPPFLAGS")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS");
        let program = PathBuf::from(command.get_program());
        let status = command.status().map_err(|source| ToolchainError::Run {
            program: program.clone(),
            source,
        })?;
        self.note(&format!(
            "step done: {step} ({:.0} s, {status})",
            started.elapsed().as_secs_f64()
        ))?;
        if status.success() {
            return Ok(());
        }
        Err(ToolchainError::Failed {
            program,
            status,
            stderr: format!(
                "{step} failed; the whole log is {}; its end:\n{}",
                self.log.display(),
                log_tail(&self.log, LOG_TAIL_LINES)
            ),
        })
    }

    /// Unpacks the one upstream tarball `usr/src/*/<prefix>*.tar.*` a
    /// Debian `*-source` package carries, and returns its top directory.
    fn unpack_source_tarball(&self, deb: &Path, prefix: &str) -> Result<PathBuf, ToolchainError> {
        let label = deb
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let debs = self.work.join("debs").join(&label);
        unpack_deb(deb, &debs).map_err(|source| ToolchainError::Unpack {
            deb: deb.to_owned(),
            source,
        })?;
        let tarball =
            find_tarball(&debs.join("usr/src"), prefix).ok_or_else(|| ToolchainError::Missing {
                root: debs.clone(),
                triple: String::new(),
                what: "upstream source tarball (usr/src/*/<name>-<version>.tar.xz)",
            })?;
        let destination = self.work.join("src");
        let before = top_directories(&destination)?;
        let file = File::open(&tarball).map_err(|source| io_error(&tarball, source))?;
        let reader = decompressor(file, &tarball)?;
        // The tarball's mtimes are kept: make must see generated files
        // (`arlex.c`, `configure`) as newer than their sources, or it tries
        // to regenerate them with flex, bison or autoconf. The tar crate
        // refuses entries outside `destination`; the tarball itself is
        // verified (its package's digest is in the signed index).
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_mtime(true);
        archive.set_preserve_permissions(true);
        fs_err::create_dir_all(&destination).map_err(|source| io_error(&destination, source))?;
        let unpack_error = |source| io_error(&tarball, source);
        for entry in archive.entries().map_err(unpack_error)? {
            let mut entry = entry.map_err(unpack_error)?;
            // GNU tar records a file added twice as a hard link to itself
            // (binutils' COPYING): the file is already there.
            if entry.header().entry_type() == tar::EntryType::Link
                && entry.link_name().ok().flatten() == entry.path().ok()
            {
                continue;
            }
            entry.unpack_in(&destination).map_err(unpack_error)?;
        }
        // The sources are big: the tarball's copy is no longer needed.
        fs_err::remove_dir_all(&debs).map_err(|source| io_error(&debs, source))?;
        let after = top_directories(&destination)?;
        let new: Vec<PathBuf> = after
            .into_iter()
            .filter(|directory| !before.contains(directory))
            .collect();
        match new.as_slice() {
            [directory] => Ok(directory.clone()),
            _ => Err(ToolchainError::Missing {
                root: tarball,
                triple: String::new(),
                what: "single top-level directory in the source tarball",
            }),
        }
    }
}

/// Makes the lexers and parsers a source tree ships (`arlex.c` from
/// `arlex.l`, `arparse.c`/`.h` from `arparse.y`) at least as new as their
/// grammar, so make uses them instead of running flex or bison — Debian's
/// repacked binutils has a grammar file newer than its generated C.
fn keep_generated_sources(directory: &Path) -> Result<(), ToolchainError> {
    walk_entries(directory, &mut |path, kind| {
        let is_grammar = path
            .extension()
            .is_some_and(|extension| extension == "l" || extension == "y");
        if !kind.is_file() || !is_grammar {
            return Ok(());
        }
        let grammar_time = fs_err::metadata(path)
            .and_then(|meta| meta.modified())
            .map_err(|source| io_error(path, source))?;
        for generated in [path.with_extension("c"), path.with_extension("h")] {
            let Ok(meta) = fs_err::metadata(&generated) else {
                continue;
            };
            let generated_time = meta
                .modified()
                .map_err(|source| io_error(&generated, source))?;
            if generated_time <= grammar_time {
                let newer = grammar_time + std::time::Duration::from_secs(1);
                File::options()
                    .write(true)
                    .open(&generated)
                    .and_then(|file| file.set_modified(newer))
                    .map_err(|source| io_error(&generated, source))?;
            }
        }
        Ok(())
    })
}

/// The tarball whose name starts with `prefix` one level below `usr_src`.
fn find_tarball(usr_src: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found = Vec::new();
    for package in fs_err::read_dir(usr_src).ok()?.flatten() {
        for entry in fs_err::read_dir(package.path()).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.contains(".tar.") {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    (found.len() == 1).then(|| found.remove(0))
}

fn top_directories(directory: &Path) -> Result<Vec<PathBuf>, ToolchainError> {
    if !directory.exists() {
        return Ok(Vec::new());
    }
    let mut directories = Vec::new();
    for entry in fs_err::read_dir(directory).map_err(|source| io_error(directory, source))? {
        let entry = entry.map_err(|source| io_error(directory, source))?;
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            directories.push(entry.path());
        }
    }
    Ok(directories)
}

/// A reader of the tarball's uncompressed bytes, by its magic number.
fn decompressor(mut file: File, path: &Path) -> Result<Box<dyn Read>, ToolchainError> {
    let mut magic = [0u8; 6];
    let read = file
        .read(&mut magic)
        .map_err(|source| io_error(path, source))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| io_error(path, source))?;
    let magic = &magic[..read];
    Ok(if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(io::BufReader::new(
            file,
        )))
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)))
    } else {
        return Err(ToolchainError::Missing {
            root: path.to_owned(),
            triple: String::new(),
            what: "xz or gzip compression (unknown tarball format)",
        });
    })
}

/// Deletes the shared libraries of the host `-dev` packages so that GCC
/// links their static archives.
fn remove_shared_libraries(directory: &Path) -> Result<(), ToolchainError> {
    for entry in fs_err::read_dir(directory).map_err(|source| io_error(directory, source))? {
        let entry = entry.map_err(|source| io_error(directory, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".so") {
            let path = entry.path();
            fs_err::remove_file(&path).map_err(|source| io_error(&path, source))?;
        }
    }
    Ok(())
}

/// Copies the kernel headers of `linux-libc-dev` (`include`) into the
/// sysroot's `usr/include`, with the architecture's `<multiarch>/asm`
/// moved to `asm`, where a libc other than Debian's glibc expects it.
fn install_kernel_headers(
    include: &Path,
    multiarch: &str,
    sysroot: &Path,
) -> Result<(), ToolchainError> {
    let destination = sysroot.join("usr/include");
    fs_err::create_dir_all(&destination).map_err(|source| io_error(&destination, source))?;
    for entry in fs_err::read_dir(include).map_err(|source| io_error(include, source))? {
        let entry = entry.map_err(|source| io_error(include, source))?;
        let path = entry.path();
        if entry.file_name() == multiarch {
            copy_tree(&path, &destination, CopyFiles::Copy)?;
        } else if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            copy_tree(&path, &destination.join(entry.file_name()), CopyFiles::Copy)?;
        }
    }
    if !destination.join("asm").is_dir() {
        return Err(ToolchainError::Missing {
            root: include.to_owned(),
            triple: multiarch.to_owned(),
            what: "kernel headers (<multiarch>/asm from linux-libc-dev)",
        });
    }
    Ok(())
}

/// The last `lines` lines of a log.
fn log_tail(log: &Path, lines: usize) -> String {
    let Ok(file) = File::open(log) else {
        return String::new();
    };
    let mut tail = std::collections::VecDeque::with_capacity(lines);
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if tail.len() == lines {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    Vec::from(tail).join("\n")
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
