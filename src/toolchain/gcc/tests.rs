//! Tests of the compiler programs: package names and path helpers, the
//! concurrent unpack (packages made with dpkg-deb), and the fix-ups of a
//! tree. Real compilers are tested end to end, for every target, by
//! `tests/matrix_network_root.rs` and `tests/compiler_network_root.rs`.

use super::*;
use crate::platform::Platforms;
use std::process::Command;

fn platform(name: &str) -> Platform {
    Platforms::builtin().unwrap().parse(name).unwrap().clone()
}

#[test]
fn package_names_follow_debian_spelling() {
    let amd64 = platform("x86_64-linux");
    let aarch64 = debian_packages(&amd64, &platform("aarch64-linux"));
    assert!(!aarch64.native);
    for expected in [
        "gcc-aarch64-linux-gnu",
        "g++-aarch64-linux-gnu",
        "cpp-aarch64-linux-gnu",
        "binutils-aarch64-linux-gnu",
        "libisl23",
        "libmpc3",
        "libjansson4",
    ] {
        assert!(
            aarch64.include.iter().any(|name| name == expected),
            "{expected}"
        );
    }
    for excluded in [
        "libc6-dev-arm64-cross",
        "libc6-arm64-cross",
        "linux-libc-dev-arm64-cross",
        "libc6",
    ] {
        assert!(
            aarch64.exclude.iter().any(|name| name == excluded),
            "{excluded}"
        );
    }
    let i686 = debian_packages(&amd64, &platform("i686-linux"));
    assert!(i686.include.contains(&"gcc-i686-linux-gnu".to_owned()));
    assert!(i686.exclude.contains(&"libc6-dev-i386-cross".to_owned()));
    // The build machine's own architecture: Debian's native compiler.
    let native = debian_packages(&amd64, &amd64);
    assert!(native.native);
    for expected in ["gcc", "g++", "cpp", "binutils"] {
        assert!(
            native.include.iter().any(|name| name == expected),
            "{expected}"
        );
    }
    assert!(native.exclude.contains(&"libc6-dev".to_owned()));
    // On an arm64 build machine, aarch64 is native and x86_64 is cross.
    let arm64 = platform("aarch64-linux");
    assert!(debian_packages(&arm64, &platform("aarch64-linux")).native);
    assert!(
        debian_packages(&arm64, &amd64)
            .include
            .contains(&"gcc-x86-64-linux-gnu".to_owned())
    );
    assert_eq!(package_triple("x86_64-linux-gnu"), "x86-64-linux-gnu");
}

/// Every name exists for the glibc targets the host's apt knows (no
/// network: local apt lists only; skipped where apt has none).
#[test]
fn compiler_package_names_are_known_to_apt() {
    let known = |name: &str| {
        Command::new("apt-cache")
            .args(["show", "--no-all-versions", name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !known("gcc-aarch64-linux-gnu") {
        eprintln!("skipped: apt has no cross packages listed here");
        return;
    }
    let build = Platforms::builtin().unwrap().host().unwrap().clone();
    for target in [
        "aarch64-linux",
        "s390x-linux",
        "armv7-linux",
        "ppc64le-linux",
        "i686-linux",
        "riscv64-linux",
        "x86_64-linux",
    ] {
        let names = debian_packages(&build, &platform(target)).include;
        let unknown: Vec<&String> = names.iter().filter(|name| !known(name)).collect();
        assert!(
            unknown.is_empty(),
            "{target}: apt does not know {unknown:?}"
        );
    }
}

#[test]
fn relative_paths() {
    let path = |text: &str| PathBuf::from(text);
    assert_eq!(relative_path(&path("/r/a/b"), &path("/r/a/b/c")), path("c"));
    assert_eq!(
        relative_path(&path("/r/a/b"), &path("/r/x/y")),
        path("../../x/y")
    );
    assert_eq!(relative_path(&path("/r"), &path("/r")), path("."));
    assert_eq!(
        normalise(&path("/usr/./lib/../include/x")),
        path("usr/include/x")
    );
    assert_eq!(normalise(&path("/../../etc")), path("etc"));
}

#[test]
fn assembling_nothing_fails() {
    let work = tempfile::tempdir().unwrap();
    let assembly = Assembly::begin(&platform("aarch64-linux"), work.path());
    let error = assembly.finish().unwrap_err();
    assert!(matches!(error, ToolchainError::Missing { .. }), "{error:?}");
}

#[test]
fn the_native_tool_directory_leads_to_binutils() {
    // Debian's native binutils has no usr/<triple>/bin: without the links
    // a relocated native gcc would run the host's `as` from the PATH.
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path();
    let triple = "x86_64-linux-gnu";
    fs_err::create_dir_all(work.join("usr/bin")).unwrap();
    for tool in ["gcc-12", "as", "ld.bfd"] {
        fs_err::write(work.join(format!("usr/bin/{triple}-{tool}")), tool).unwrap();
    }
    // A cross binutils ships its own links: they are kept.
    fs_err::create_dir_all(work.join("usr/x86_64-linux-gnu/bin")).unwrap();
    fs_err::os::unix::fs::symlink("elsewhere", work.join("usr/x86_64-linux-gnu/bin/ld.bfd"))
        .unwrap();
    tree::link_tool_directory(work, triple).unwrap();
    let tools = work.join("usr/x86_64-linux-gnu/bin");
    assert_eq!(fs_err::read(tools.join("as")).unwrap(), b"as");
    assert_eq!(
        fs_err::read_link(tools.join("ld.bfd")).unwrap(),
        Path::new("elsewhere")
    );
    assert!(fs_err::symlink_metadata(tools.join("ld.gold")).is_err());
}

// ---------------------------------------------------------------------------
// Concurrent unpacking (offline: packages made with dpkg-deb).

use crate::debian::deb::tests::{TestFile, build_test_deb};

/// Builds `<package>_1.0-1_arm64.deb` in `directory` holding `files`.
fn test_deb(directory: &Path, package: &str, files: &[TestFile<'_>]) -> PathBuf {
    build_test_deb(directory, package, files, &[], None, "xz")
}

#[test]
fn packages_are_unpacked_together_and_the_host_c_library_is_not() {
    let scratch = tempfile::tempdir().unwrap();
    let mut debs = Vec::new();
    for index in 0..12 {
        let name = format!("lib{index}-arm64-cross");
        let file = format!("usr/aarch64-linux-gnu/lib/sub/lib{index}.so");
        debs.push(test_deb(
            scratch.path(),
            &name,
            &[TestFile::Regular(&file, name.as_bytes())],
        ));
    }
    debs.push(test_deb(
        scratch.path(),
        "binutils-aarch64-linux-gnu",
        &[TestFile::Executable("usr/bin/aarch64-linux-gnu-as", b"as")],
    ));
    debs.push(test_deb(
        scratch.path(),
        "zlib1g",
        &[TestFile::Regular(
            "usr/lib/x86_64-linux-gnu/libz.so.1",
            b"z",
        )],
    ));
    // The build machine's C library is never unpacked.
    debs.push(test_deb(
        scratch.path(),
        "libc6",
        &[TestFile::Regular(
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            b"c",
        )],
    ));

    let root = scratch.path().join("toolchain");
    fs_err::create_dir(&root).unwrap();
    let assembly = Assembly::begin(&platform("aarch64-linux"), &root);
    assembly.add_all(&debs).unwrap();
    let tree = assembly.unpacked().unwrap();
    for index in 0..12 {
        let file = tree.join(format!("usr/aarch64-linux-gnu/lib/sub/lib{index}.so"));
        assert_eq!(
            fs_err::read(&file).unwrap(),
            format!("lib{index}-arm64-cross").as_bytes()
        );
    }
    assert!(tree.join("usr/bin/aarch64-linux-gnu-as").is_file());
    assert!(tree.join("usr/lib/x86_64-linux-gnu/libz.so.1").is_file());
    assert!(!tree.join("usr/lib/x86_64-linux-gnu/libc.so.6").exists());
}

/// Two packages that ship the same paths end as if unpacked one after
/// another in order, whichever is added first.
#[test]
fn overlapping_packages_end_as_if_unpacked_in_order() {
    let scratch = tempfile::tempdir().unwrap();
    let first = test_deb(
        scratch.path(),
        "first",
        &[
            TestFile::Regular("usr/share/same", b"first"),
            TestFile::Regular("usr/lib/link", b"a file"),
        ],
    );
    let second = test_deb(
        scratch.path(),
        "second",
        &[
            TestFile::Regular("usr/share/same", b"second"),
            TestFile::Symlink("usr/lib/link", "same"),
            TestFile::Regular("usr/share/only-second", b"2"),
        ],
    );
    let debs = [first, second];
    for adds in [[0, 1], [1, 0]] {
        let root = scratch
            .path()
            .join(format!("toolchain-{}{}", adds[0], adds[1]));
        fs_err::create_dir(&root).unwrap();
        let assembly = Assembly::begin(&platform("aarch64-linux"), &root);
        for index in adds {
            assembly.add(index, &debs[index]).unwrap();
        }
        let tree = assembly.unpacked().unwrap();
        assert_eq!(
            fs_err::read(tree.join("usr/share/same")).unwrap(),
            b"second",
            "{adds:?}"
        );
        assert_eq!(
            fs_err::read_link(tree.join("usr/lib/link")).unwrap(),
            Path::new("same"),
            "{adds:?}"
        );
        assert!(tree.join("usr/share/only-second").is_file());
        // Nothing of the abandoned concurrent unpack is left.
        let usr_lib: Vec<_> = fs_err::read_dir(tree.join("usr/lib"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(usr_lib, ["link"], "{adds:?}");
    }
}

#[test]
fn a_package_that_cannot_be_read_is_named() {
    let scratch = tempfile::tempdir().unwrap();
    let debs = [test_deb(
        scratch.path(),
        "libc6-arm64-cross",
        &[TestFile::Regular(
            "usr/aarch64-linux-gnu/lib/libc.so.6",
            b"c",
        )],
    )];
    let broken = scratch.path().join("broken.deb");
    fs_err::write(&broken, b"not an ar archive").unwrap();
    let work = tempfile::tempdir().unwrap();
    let assembly = Assembly::begin(&platform("aarch64-linux"), work.path());
    let error = assembly
        .add_all(&[debs[0].clone(), broken.clone()])
        .unwrap_err();
    assert!(
        matches!(&error, ToolchainError::Control { deb, .. } if deb == &broken),
        "{error:?}"
    );
}
