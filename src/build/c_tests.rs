//! Tests of the C recipe builder. Offline, tiny make, autotools and cmake
//! projects are built with the host's own gcc standing in for a cross
//! compiler (the plumbing is the same) — cmake and autoreconf tests skip
//! when those tools are missing. Cross builds with real toolchains are
//! tested end to end by `tests/matrix_network_root.rs` and
//! `tests/c_recipe_network_root.rs`.

use super::*;
use std::process::Output;

/// A target that is this machine, with the host's gcc and binutils.
struct HostTools {
    cc: PathBuf,
    cxx: Option<PathBuf>,
    ar: PathBuf,
    ranlib: PathBuf,
    strip: PathBuf,
    sysroot: PathBuf,
}

impl HostTools {
    fn find() -> Option<HostTools> {
        let which = |name: &str| {
            ["/usr/bin", "/bin", "/usr/local/bin"]
                .iter()
                .map(|directory| Path::new(directory).join(name))
                .find(|path| path.is_file())
        };
        Some(HostTools {
            cc: which("gcc")?,
            cxx: which("g++"),
            ar: which("ar")?,
            ranlib: which("ranlib")?,
            strip: which("strip")?,
            sysroot: PathBuf::from("/"),
        })
    }

    fn target(&self) -> CTarget<'_> {
        CTarget {
            gnu_triple: crate::toolchain::gcc::BUILD_MULTIARCH,
            build_triple: crate::toolchain::gcc::BUILD_MULTIARCH,
            cc: &self.cc,
            cxx: self.cxx.as_deref(),
            ar: &self.ar,
            ranlib: &self.ranlib,
            strip: &self.strip,
            sysroot: &self.sysroot,
            multiarch: crate::toolchain::gcc::BUILD_MULTIARCH,
            jobs: 2,
            source_date_epoch: 1_700_000_000,
            static_link: false,
        }
    }
}

fn has_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = root.join(name);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, text).unwrap();
    }
}

fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_of(program: &Path) -> String {
    String::from_utf8_lossy(&run_ok(&mut Command::new(program)).stdout).into_owned()
}

/// Every file under `root`, relative, sorted.
fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, directory: &Path, out: &mut Vec<String>) {
        for entry in fs_err::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn kinds_are_detected_from_the_tree() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    assert_eq!(CKind::detect(root), None);
    write_files(root, &[("Makefile", "all:\n")]);
    assert_eq!(CKind::detect(root), Some(CKind::Make));
    write_files(root, &[("CMakeLists.txt", "project(x C)\n")]);
    assert_eq!(CKind::detect(root), Some(CKind::Cmake));
    write_files(root, &[("configure.ac", "AC_INIT([x], [1])\n")]);
    assert_eq!(CKind::detect(root), Some(CKind::Autotools));
    assert_eq!(CKind::Cmake.name(), "cmake");
}

#[test]
fn the_cmake_toolchain_file_names_the_cross_tools_and_sysroot() {
    let cc = PathBuf::from("/t/bin/aarch64-linux-gnu-gcc");
    let cxx = PathBuf::from("/t/bin/aarch64-linux-gnu-g++");
    let tool = PathBuf::from("/t/bin/aarch64-linux-gnu-ar");
    let sysroot = PathBuf::from("/t/sys \"root\"");
    let target = CTarget {
        gnu_triple: "aarch64-linux-gnu",
        build_triple: "x86_64-linux-gnu",
        cc: &cc,
        cxx: Some(&cxx),
        ar: &tool,
        ranlib: &tool,
        strip: &tool,
        sysroot: &sysroot,
        multiarch: "aarch64-linux-gnu",
        jobs: 1,
        source_date_epoch: 0,
        static_link: false,
    };
    let text = cmake_toolchain(&target);
    for expected in [
        "set(CMAKE_SYSTEM_NAME Linux)",
        "set(CMAKE_SYSTEM_PROCESSOR aarch64)",
        "set(CMAKE_C_COMPILER \"/t/bin/aarch64-linux-gnu-gcc\")",
        "set(CMAKE_CXX_COMPILER \"/t/bin/aarch64-linux-gnu-g++\")",
        "set(CMAKE_SYSROOT \"/t/sys \\\"root\\\"\")",
        "set(CMAKE_AR \"/t/bin/aarch64-linux-gnu-ar\" CACHE FILEPATH \"\")",
        "set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

const HELLO_C: &str = r#"#include <stdio.h>
int main(void) {
    printf("hello from %s\n", __FILE__);
    return 0;
}
"#;

const MAKEFILE: &str = "PREFIX ?= /usr\n\
all: hello\n\
hello: hello.c\n\
\t$(CC) $(CFLAGS) -g -o $@ hello.c\n\
\ttest \"$$SOURCE_DATE_EPOCH\" = 1700000000\n\
\ttest \"$$TZ\" = UTC\n\
install: hello\n\
\tmkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share/info\n\
\tcp hello $(DESTDIR)$(PREFIX)/bin/hello\n\
\techo libtool > $(DESTDIR)$(PREFIX)/lib/libhello.la\n\
\techo index > $(DESTDIR)$(PREFIX)/share/info/dir\n\
\techo manual > $(DESTDIR)$(PREFIX)/share/info/hello.info\n";

#[test]
fn a_make_project_installs_under_usr_local_reproducibly() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let mut binaries = Vec::new();
    for checkout in ["one", "two-elsewhere"] {
        let source = scratch.path().join(checkout).join("src");
        write_files(&source, &[("Makefile", MAKEFILE), ("hello.c", HELLO_C)]);
        let staging = scratch.path().join(checkout).join("staging");
        let started = Instant::now();
        let result = build(
            CKind::Make,
            &source,
            &scratch.path().join(checkout).join("build"),
            &staging,
            &tools.target(),
        )
        .unwrap();
        eprintln!("make build: {:.2?}", started.elapsed());
        assert_eq!(result.staging, fs_err::canonicalize(&staging).unwrap());
        assert!(result.seconds > 0.0);
        assert_eq!(
            listing(&staging),
            ["usr/local/bin/hello", "usr/local/share/info/hello.info"]
        );
        assert!(!staging.join("usr/local/lib").exists(), "emptied, removed");
        // The source tree itself is untouched: the build ran in a copy.
        assert_eq!(listing(&source), ["Makefile", "hello.c"]);
        let program = staging.join("usr/local/bin/hello");
        // Compiled by a relative name; the directory (DW_AT_comp_dir) is
        // remapped, which the byte comparison below checks.
        assert_eq!(stdout_of(&program), "hello from hello.c\n");
        binaries.push(fs_err::read(&program).unwrap());
    }
    assert!(
        binaries[0] == binaries[1],
        "two checkouts built different bytes"
    );
}

#[test]
fn a_failing_step_names_itself_and_the_source() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("broken");
    write_files(
        &source,
        &[("Makefile", "all:\n\texit 3\n"), ("hello.c", HELLO_C)],
    );
    let error = build(
        CKind::Make,
        &source,
        &scratch.path().join("build"),
        &scratch.path().join("staging"),
        &tools.target(),
    )
    .unwrap_err();
    match &error {
        CError::Failed {
            step, source_dir, ..
        } => {
            assert_eq!(step, "make");
            assert!(source_dir.ends_with("broken"), "{source_dir:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("exit status: 2"), "{error}");
    assert!(error.hint().is_some());

    let error = build(
        CKind::Cmake,
        &source,
        &scratch.path().join("build2"),
        &scratch.path().join("staging2"),
        &tools.target(),
    )
    .unwrap_err();
    assert!(matches!(error, CError::NoBuildSystem { .. }), "{error:?}");
    assert!(error.to_string().contains("CMakeLists.txt"), "{error}");
}

const CONFIGURE_AC: &str = "AC_INIT([greet], [1.0])\n\
AM_INIT_AUTOMAKE([foreign])\n\
AC_PROG_CC\n\
AC_CONFIG_FILES([Makefile])\n\
AC_OUTPUT\n";

const MAKEFILE_AM: &str = "bin_PROGRAMS = greet\ngreet_SOURCES = hello.c\n";

#[test]
fn an_autotools_project_with_only_configure_ac_is_autoreconfed() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    if !has_program("autoreconf") || !has_program("automake") {
        eprintln!("skipped: autoconf/automake are not installed");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("greet");
    write_files(
        &source,
        &[
            ("configure.ac", CONFIGURE_AC),
            ("Makefile.am", MAKEFILE_AM),
            ("hello.c", HELLO_C),
        ],
    );
    let staging = scratch.path().join("staging");
    let started = Instant::now();
    build(
        CKind::Autotools,
        &source,
        &scratch.path().join("build"),
        &staging,
        &tools.target(),
    )
    .unwrap();
    eprintln!("autoreconf + configure + make: {:.2?}", started.elapsed());
    assert_eq!(listing(&staging), ["usr/local/bin/greet"]);
    assert_eq!(
        listing(&source),
        ["Makefile.am", "configure.ac", "hello.c"],
        "the source tree was written to"
    );
    let output = stdout_of(&staging.join("usr/local/bin/greet"));
    assert!(output.starts_with("hello from "), "{output}");
    assert!(
        !output.contains(scratch.path().to_str().unwrap()),
        "{output}"
    );

    // A tree with a generated configure builds out of tree, leaving the
    // source untouched.
    let generated = scratch.path().join("build/source");
    assert!(generated.join("configure").is_file());
    let distributed = scratch.path().join("dist");
    copy_tree(&generated, &distributed, Path::new("/nonexistent")).unwrap();
    for leftover in [
        "config.status",
        "config.log",
        "Makefile",
        "greet",
        "hello.o",
    ] {
        let path = distributed.join(leftover);
        if path.exists() {
            fs_err::remove_file(path).unwrap();
        }
    }
    let before = listing(&distributed);
    let staging = scratch.path().join("staging2");
    let object_dir = scratch.path().join("objects");
    build(
        CKind::Autotools,
        &distributed,
        &object_dir,
        &staging,
        &tools.target(),
    )
    .unwrap();
    assert_eq!(listing(&distributed), before);
    assert!(object_dir.join("config.status").is_file());
    assert!(!object_dir.join("source").exists());
    assert_eq!(listing(&staging), ["usr/local/bin/greet"]);
}

#[test]
fn a_cmake_project_installs_under_usr_local() {
    let Some(tools) = HostTools::find() else {
        eprintln!("skipped: no host gcc");
        return;
    };
    if !has_program("cmake") {
        eprintln!("skipped: cmake is not installed");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("src");
    write_files(
        &source,
        &[
            (
                "CMakeLists.txt",
                "cmake_minimum_required(VERSION 3.13)\nproject(greet C)\n\
                 add_library(words STATIC words.c)\n\
                 add_executable(greet hello.c)\n\
                 install(TARGETS greet words)\n",
            ),
            ("hello.c", HELLO_C),
            ("words.c", "int words(void) { return 3; }\n"),
        ],
    );
    let build_dir = scratch.path().join("build");
    let staging = scratch.path().join("staging");
    let started = Instant::now();
    build(CKind::Cmake, &source, &build_dir, &staging, &tools.target()).unwrap();
    eprintln!("cmake build: {:.2?}", started.elapsed());
    assert!(build_dir.join("xbuild-toolchain.cmake").is_file());
    assert_eq!(
        listing(&staging),
        ["usr/local/bin/greet", "usr/local/lib/libwords.a"]
    );
    assert_eq!(
        stdout_of(&staging.join("usr/local/bin/greet")),
        "hello from /xbuild/src/hello.c\n"
    );
}

#[test]
fn configure_always_cross_compiles() {
    assert_eq!(
        configure_build_triple("x86_64-linux-gnu", "aarch64-linux-gnu"),
        "x86_64-linux-gnu"
    );
    assert_eq!(
        configure_build_triple("x86_64-linux-gnu", "x86_64-linux-gnu"),
        "x86_64-unknown-linux-gnu"
    );
    assert_eq!(
        configure_build_triple("x86_64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"),
        "x86_64-pc-linux-gnu"
    );
}
