//! Tests of `unpack`: what is kept, and every way out of the destination
//! that must be refused.

use super::*;
use crate::debian::deb::tests::{TestFile, build_test_deb, control_tar_gz, write_ar};
use std::os::unix::fs::MetadataExt;
use tar::EntryType;

/// One raw data-tarball entry: name, type, mode, link target, contents.
type RawEntry<'a> = (&'a str, EntryType, u32, &'a str, &'a [u8]);

/// Writes a `.deb` whose uncompressed data tarball holds `entries` with
/// names and link names written raw, so the tar crate's own path checks do
/// not stop a hostile archive from being made.
fn write_raw_deb(path: &Path, entries: &[RawEntry<'_>]) {
    let mut data = tar::Builder::new(Vec::new());
    for (name, kind, mode, link, contents) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(*mode);
        header.set_mtime(1_700_000_000);
        header.set_size(contents.len() as u64);
        header.set_cksum();
        data.append(&header, *contents).unwrap();
    }
    write_ar(
        path,
        &[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.gz", control_tar_gz("raw")),
            ("data.tar", data.into_inner().unwrap()),
        ],
    );
}

/// A scratch directory with `dest/` inside and room for files "outside" it.
struct Scratch {
    directory: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            directory: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.directory.path()
    }
    fn dest(&self) -> PathBuf {
        self.path().join("dest")
    }
    fn deb(&self, name: &str, entries: &[RawEntry<'_>]) -> PathBuf {
        let path = self.path().join(format!("{name}.deb"));
        write_raw_deb(&path, entries);
        path
    }
}

#[test]
fn keeps_files_modes_symlinks_and_hard_links() {
    let scratch = Scratch::new();
    let deb = scratch.deb(
        "good",
        &[
            ("./", EntryType::Directory, 0o755, "", b""),
            ("./usr/", EntryType::Directory, 0o755, "", b""),
            ("./usr/bin/", EntryType::Directory, 0o755, "", b""),
            (
                "./usr/bin/tool",
                EntryType::Regular,
                0o4755,
                "",
                b"#!/bin/sh\n",
            ),
            ("./usr/bin/alias", EntryType::Symlink, 0o777, "tool", b""),
            (
                "./usr/bin/same",
                EntryType::Link,
                0o755,
                "./usr/bin/tool",
                b"",
            ),
            (
                "./usr/share/doc/x/README",
                EntryType::Regular,
                0o644,
                "",
                b"hi",
            ),
            ("./run/fifo", EntryType::Fifo, 0o644, "", b""),
            ("./ro/", EntryType::Directory, 0o555, "", b""),
            ("./ro/inside", EntryType::Regular, 0o444, "", b"x"),
        ],
    );
    let dest = scratch.dest();
    let stats = unpack_deb(&deb, &dest).unwrap();
    assert_eq!(stats.files, 3);
    assert_eq!(stats.bytes, 13);
    assert_eq!(stats.symlinks, 1);
    assert_eq!(stats.hard_links, 1);
    assert_eq!(stats.skipped, 1);
    assert_eq!(stats.directories, 4);

    let tool = fs_err::metadata(dest.join("usr/bin/tool")).unwrap();
    assert_eq!(
        tool.mode() & 0o7777,
        0o755,
        "setuid is dropped, the rest kept"
    );
    assert_eq!(tool.mtime(), 1_700_000_000);
    assert_eq!(
        fs_err::read_link(dest.join("usr/bin/alias")).unwrap(),
        Path::new("tool")
    );
    let same = fs_err::metadata(dest.join("usr/bin/same")).unwrap();
    assert_eq!(same.ino(), tool.ino());
    assert_eq!(
        fs_err::read(dest.join("usr/share/doc/x/README")).unwrap(),
        b"hi"
    );
    assert!(!dest.join("run/fifo").exists());
    let ro = fs_err::metadata(dest.join("ro")).unwrap();
    assert_eq!(ro.mode() & 0o7777, 0o555);
    assert_eq!(fs_err::read(dest.join("ro/inside")).unwrap(), b"x");
    // Leave the scratch directory removable.
    fs_err::set_permissions(dest.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn absolute_names_land_inside_dest() {
    let scratch = Scratch::new();
    let deb = scratch.deb(
        "absolute",
        &[("/etc/absolute", EntryType::Regular, 0o644, "", b"in")],
    );
    unpack_deb(&deb, &scratch.dest()).unwrap();
    assert_eq!(
        fs_err::read(scratch.dest().join("etc/absolute")).unwrap(),
        b"in"
    );
}

#[test]
fn refuses_parent_components() {
    for name in ["../x", "./../x", "a/../../x", "a/b/../../../x", "/../x"] {
        let scratch = Scratch::new();
        let deb = scratch.deb("dotdot", &[(name, EntryType::Regular, 0o644, "", b"out")]);
        let error = unpack_deb(&deb, &scratch.dest()).unwrap_err();
        assert!(
            matches!(&error, UnpackError::UnsafePath { entry, .. } if entry == name),
            "{name}: {error:?}"
        );
        assert!(!scratch.path().join("x").exists(), "{name} escaped");
    }
}

/// The data tarball of `deb` unpacked as a plain tarball: without the
/// package checks, only the file system ones hold.
fn unpack_as_plain_tarball(deb: &Path, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let mut archive = DebArchive::open(deb).unwrap();
    unpack_tar(archive.data().unwrap(), dest, deb)
}

#[test]
fn refuses_writing_through_a_symlink_of_the_same_archive() {
    let scratch = Scratch::new();
    let outside = scratch.path().join("outside");
    fs_err::create_dir(&outside).unwrap();
    let absolute = outside.to_str().unwrap();
    let links = [
        absolute,
        "/",
        "..",
        "../outside",
        ".",
        "../../../../..",
        "/usr/../",
    ];
    let kinds = [
        (EntryType::Regular, ""),
        (EntryType::Directory, ""),
        (EntryType::Symlink, "/etc/shadow"),
        (EntryType::Link, "./inside"),
        (EntryType::Fifo, ""),
    ];
    for link in links {
        for (kind, target) in kinds {
            let dest = scratch.dest();
            let _ = fs_err::remove_dir_all(&dest);
            let deb = scratch.deb(
                "escape",
                &[
                    ("./inside", EntryType::Regular, 0o644, "", b"in"),
                    ("./escape", EntryType::Symlink, 0o777, link, b""),
                    ("./escape/x", kind, 0o644, target, b""),
                ],
            );
            let error = unpack_deb(&deb, &dest).unwrap_err();
            assert!(
                matches!(&error, UnpackError::Refused { entry, problem: UnsafeEntry::UnderSymlink { symlink }, .. } if entry == "./escape/x" && symlink == "escape"),
                "{link} {kind:?}: {error:?}"
            );
            assert!(error.is_unsafe_archive());
            // Without the package checks, the file system checks refuse it.
            let _ = fs_err::remove_dir_all(&dest);
            let result = unpack_as_plain_tarball(&deb, &dest);
            if kind == EntryType::Fifo {
                assert_eq!(result.unwrap().skipped, 1);
            } else {
                let error = result.unwrap_err();
                assert!(
                    matches!(&error, UnpackError::ThroughSymlink { symlink, .. } if symlink == &dest.join("escape")),
                    "{link} {kind:?}: {error:?}"
                );
            }
            assert_eq!(fs_err::read_dir(&outside).unwrap().count(), 0);
            assert!(!scratch.path().join("x").exists());
        }
    }
}

#[test]
fn a_directory_over_a_symlink_of_the_same_archive_is_refused() {
    let scratch = Scratch::new();
    let outside = scratch.path().join("outside");
    fs_err::create_dir(&outside).unwrap();
    fs_err::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let deb = scratch.deb(
        "over",
        &[
            (
                "./escape",
                EntryType::Symlink,
                0o777,
                outside.to_str().unwrap(),
                b"",
            ),
            ("./escape/", EntryType::Directory, 0o777, "", b""),
        ],
    );
    let error = unpack_deb(&deb, &scratch.dest()).unwrap_err();
    assert!(
        matches!(
            &error,
            UnpackError::Refused {
                problem: UnsafeEntry::DirectoryOverSymlink,
                ..
            }
        ),
        "{error:?}"
    );
    // The directory the symlink points to keeps its mode.
    assert_eq!(fs_err::metadata(&outside).unwrap().mode() & 0o7777, 0o700);
}

#[test]
fn a_package_with_a_device_node_is_refused_and_none_is_created() {
    for (kind, name) in [(EntryType::Char, "character"), (EntryType::Block, "block")] {
        let scratch = Scratch::new();
        let dest = scratch.dest();
        let deb = scratch.deb(
            "device",
            &[
                ("./dev/", EntryType::Directory, 0o755, "", b""),
                ("./dev/evil", kind, 0o666, "", b""),
            ],
        );
        let error = unpack_deb(&deb, &dest).unwrap_err();
        assert!(
            matches!(&error, UnpackError::Refused { entry, problem: UnsafeEntry::Device { kind }, .. } if entry == "./dev/evil" && *kind == name),
            "{error:?}"
        );
        assert!(error.to_string().contains("device.deb"), "{error}");
        assert!(fs_err::symlink_metadata(dest.join("dev/evil")).is_err());
        // The same tarball as a plain one: skipped, never created.
        let stats = unpack_as_plain_tarball(&deb, &dest).unwrap();
        assert_eq!(stats.skipped, 1);
        assert!(fs_err::symlink_metadata(dest.join("dev/evil")).is_err());
    }
}

#[test]
fn a_package_with_a_whiteout_name_is_refused() {
    for name in [
        "./etc/.wh.keepme",
        "./etc/.wh..wh..opq",
        "./.wh...",
        "./.wh..",
        "./etc/.wh.",
        "./etc/.wh.dir/file",
    ] {
        let scratch = Scratch::new();
        let deb = scratch.deb("whiteout", &[(name, EntryType::Regular, 0o644, "", b"x")]);
        let error = unpack_deb(&deb, &scratch.dest()).unwrap_err();
        assert!(
            matches!(&error, UnpackError::Refused { entry, problem: UnsafeEntry::WhiteoutName { .. }, .. } if entry == name),
            "{name}: {error:?}"
        );
        assert!(!scratch.dest().join("etc").exists(), "{name}");
    }
}

#[test]
fn refuses_writing_through_a_symlink_of_an_earlier_unpack() {
    let scratch = Scratch::new();
    let outside = scratch.path().join("outside");
    fs_err::create_dir(&outside).unwrap();
    let dest = scratch.dest();
    let first = scratch.deb(
        "first",
        &[
            ("./usr/", EntryType::Directory, 0o755, "", b""),
            (
                "./usr/lib",
                EntryType::Symlink,
                0o777,
                outside.to_str().unwrap(),
                b"",
            ),
        ],
    );
    unpack_deb(&first, &dest).unwrap();
    // A directory entry, a deeper file, and a hard link all refuse to pass.
    for (name, kind, link) in [
        ("./usr/lib/", EntryType::Directory, ""),
        ("./usr/lib/deeper/libx.so", EntryType::Regular, ""),
        ("./usr/lib/x", EntryType::Regular, ""),
    ] {
        let second = scratch.deb("second", &[(name, kind, 0o644, link, b"out")]);
        let error = unpack_deb(&second, &dest).unwrap_err();
        assert!(
            matches!(&error, UnpackError::ThroughSymlink { .. }),
            "{name}: {error:?}"
        );
    }
    assert_eq!(fs_err::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn a_file_replaces_a_symlink_instead_of_writing_through_it() {
    let scratch = Scratch::new();
    let victim = scratch.path().join("victim");
    fs_err::write(&victim, b"precious").unwrap();
    let dest = scratch.dest();
    let first = scratch.deb(
        "first",
        &[(
            "./f",
            EntryType::Symlink,
            0o777,
            victim.to_str().unwrap(),
            b"",
        )],
    );
    unpack_deb(&first, &dest).unwrap();
    let second = scratch.deb("second", &[("./f", EntryType::Regular, 0o644, "", b"new")]);
    unpack_deb(&second, &dest).unwrap();
    assert_eq!(fs_err::read(&victim).unwrap(), b"precious");
    assert!(fs_err::symlink_metadata(dest.join("f")).unwrap().is_file());
    assert_eq!(fs_err::read(dest.join("f")).unwrap(), b"new");
}

#[test]
fn refuses_hard_links_out_of_dest_or_to_symlinks() {
    let scratch = Scratch::new();
    let victim = scratch.path().join("victim");
    fs_err::write(&victim, b"precious").unwrap();
    let dest = scratch.dest();

    let dotdot = scratch.deb(
        "dotdot",
        &[("./h", EntryType::Link, 0o644, "../victim", b"")],
    );
    let error = unpack_deb(&dotdot, &dest).unwrap_err();
    assert!(matches!(error, UnpackError::UnsafePath { .. }), "{error:?}");

    let via_symlink = scratch.deb(
        "via-symlink",
        &[
            (
                "./s",
                EntryType::Symlink,
                0o777,
                victim.to_str().unwrap(),
                b"",
            ),
            ("./h", EntryType::Link, 0o644, "./s", b""),
        ],
    );
    let error = unpack_deb(&via_symlink, &dest).unwrap_err();
    assert!(matches!(error, UnpackError::Conflict { .. }), "{error:?}");

    let through_dir_symlink = scratch.deb(
        "through",
        &[
            (
                "./d",
                EntryType::Symlink,
                0o777,
                scratch.path().to_str().unwrap(),
                b"",
            ),
            ("./h2", EntryType::Link, 0o644, "./d/victim", b""),
        ],
    );
    let error = unpack_deb(&through_dir_symlink, &dest).unwrap_err();
    assert!(
        matches!(
            &error,
            UnpackError::Refused {
                problem: UnsafeEntry::HardLinkUnderSymlink { .. },
                ..
            }
        ),
        "{error:?}"
    );
    let error = unpack_as_plain_tarball(&through_dir_symlink, &dest).unwrap_err();
    assert!(
        matches!(error, UnpackError::ThroughSymlink { .. }),
        "{error:?}"
    );
    assert_eq!(fs_err::metadata(&victim).unwrap().nlink(), 1);
}

#[test]
fn a_directory_is_never_replaced() {
    let scratch = Scratch::new();
    let dest = scratch.dest();
    let deb = scratch.deb(
        "dir-then-file",
        &[
            ("./d/", EntryType::Directory, 0o755, "", b""),
            ("./d/keep", EntryType::Regular, 0o644, "", b"k"),
            ("./d", EntryType::Symlink, 0o777, "/", b""),
        ],
    );
    let error = unpack_deb(&deb, &dest).unwrap_err();
    assert!(matches!(error, UnpackError::Conflict { .. }), "{error:?}");
    assert!(dest.join("d/keep").is_file());
}

#[test]
fn unpacks_a_package_built_by_dpkg_deb() {
    let scratch = Scratch::new();
    let deb = build_test_deb(
        scratch.path(),
        "real",
        &[
            TestFile::Executable("usr/bin/hello", b"#!/bin/sh\necho hi\n"),
            TestFile::Regular("usr/share/doc/real/copyright", b"free"),
            TestFile::Symlink("usr/bin/hi", "hello"),
            TestFile::HardLink("usr/bin/hello2", "usr/bin/hello"),
        ],
        &[],
        None,
        "xz",
    );
    let dest = scratch.dest();
    let stats = unpack_deb(&deb, &dest).unwrap();
    assert_eq!(stats.files, 2);
    assert_eq!(stats.hard_links, 1);
    assert_eq!(stats.symlinks, 1);
    let hello = fs_err::metadata(dest.join("usr/bin/hello")).unwrap();
    assert_eq!(hello.mode() & 0o777, 0o755);
    assert_eq!(
        fs_err::read_link(dest.join("usr/bin/hi")).unwrap(),
        Path::new("hello")
    );
    assert_eq!(
        fs_err::read(dest.join("usr/share/doc/real/copyright")).unwrap(),
        b"free"
    );
}

// ---------------------------------------------------------------------------
// Several archives unpacked into one directory at once.

/// Many archives whose files share deep directories, unpacked at the same
/// time: a directory another thread made a moment ago is fine.
#[test]
fn concurrent_unpacks_share_directories() {
    let scratch = Scratch::new();
    let dest = scratch.dest();
    let mut debs = Vec::new();
    for archive in 0..8 {
        let names: Vec<String> = (0..40)
            .map(|directory| format!("./usr/share/d{directory}/a/b/f{archive}"))
            .collect();
        let entries: Vec<RawEntry<'_>> = names
            .iter()
            .map(|name| (name.as_str(), EntryType::Regular, 0o644, "", &b"x"[..]))
            .collect();
        debs.push(scratch.deb(&format!("p{archive}"), &entries));
    }
    for _ in 0..5 {
        let _ = fs_err::remove_dir_all(&dest);
        let shared = SharedUnpack::new(&dest);
        let barrier = std::sync::Barrier::new(debs.len());
        std::thread::scope(|scope| {
            for (order, deb) in debs.iter().enumerate() {
                let (shared, barrier) = (&shared, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    shared.unpack_deb(order, deb).unwrap()
                });
            }
        });
        shared.finish().unwrap();
        for archive in 0..8 {
            for directory in 0..40 {
                let file = dest.join(format!("usr/share/d{directory}/a/b/f{archive}"));
                assert!(file.is_file(), "{}", file.display());
            }
        }
    }
}

#[test]
fn a_shared_unpack_never_replaces_what_another_archive_wrote() {
    let scratch = Scratch::new();
    let dest = scratch.dest();
    let shared = SharedUnpack::new(&dest);
    let first = scratch.deb(
        "first",
        &[
            ("./f", EntryType::Regular, 0o644, "", b"first"),
            ("./s", EntryType::Symlink, 0o777, "f", b""),
        ],
    );
    shared.unpack_deb(0, &first).unwrap();
    for (name, kind, link) in [
        ("./f", EntryType::Regular, ""),
        ("./s", EntryType::Regular, ""),
        ("./f", EntryType::Symlink, "elsewhere"),
        // A hard link to another archive's file.
        ("./h", EntryType::Link, "./f"),
    ] {
        let second = scratch.deb("second", &[(name, kind, 0o644, link, b"second")]);
        let error = shared.unpack_deb(1, &second).unwrap_err();
        assert!(
            matches!(&error, UnpackError::Overlap { entry, .. } if entry == name),
            "{name}: {error:?}"
        );
        assert_eq!(error.archive(), second);
    }
    assert_eq!(fs_err::read(dest.join("f")).unwrap(), b"first");
    assert_eq!(fs_err::read_link(dest.join("s")).unwrap(), Path::new("f"));
    assert!(!dest.join("h").exists());

    // Within one archive, a later entry still replaces an earlier one, and
    // hard links to its own files are kept.
    let own = scratch.deb(
        "own",
        &[
            ("./g", EntryType::Regular, 0o644, "", b"old"),
            ("./g", EntryType::Regular, 0o644, "", b"new"),
            ("./g2", EntryType::Link, 0o644, "./g", b""),
        ],
    );
    shared.unpack_deb(2, &own).unwrap();
    assert_eq!(fs_err::read(dest.join("g2")).unwrap(), b"new");
    shared.finish().unwrap();
}

#[test]
fn a_shared_unpack_still_refuses_symlinks_and_files_where_a_directory_should_be() {
    let scratch = Scratch::new();
    let outside = scratch.path().join("outside");
    fs_err::create_dir(&outside).unwrap();
    let dest = scratch.dest();
    let shared = SharedUnpack::new(&dest);
    let first = scratch.deb(
        "first",
        &[
            (
                "./usr/lib",
                EntryType::Symlink,
                0o777,
                outside.to_str().unwrap(),
                b"",
            ),
            ("./usr/file", EntryType::Regular, 0o644, "", b"f"),
        ],
    );
    shared.unpack_deb(0, &first).unwrap();
    let through = scratch.deb(
        "through",
        &[("./usr/lib/x", EntryType::Regular, 0o644, "", b"out")],
    );
    let error = shared.unpack_deb(1, &through).unwrap_err();
    assert!(
        matches!(error, UnpackError::ThroughSymlink { .. }),
        "{error:?}"
    );
    let into_file = scratch.deb(
        "into-file",
        &[("./usr/file/x", EntryType::Regular, 0o644, "", b"x")],
    );
    let error = shared.unpack_deb(2, &into_file).unwrap_err();
    assert!(matches!(error, UnpackError::Conflict { .. }), "{error:?}");
    assert_eq!(fs_err::read_dir(&outside).unwrap().count(), 0);
}

/// A directory's mode comes from the last archive in order that lists it,
/// whichever finished last, and only once all are unpacked: a read-only
/// directory of one archive does not stop another from writing into it.
#[test]
fn shared_directory_modes_follow_the_order_and_come_last() {
    let scratch = Scratch::new();
    let dest = scratch.dest();
    let shared = SharedUnpack::new(&dest);
    let early = scratch.deb(
        "early",
        &[
            ("./d/", EntryType::Directory, 0o555, "", b""),
            ("./d/a", EntryType::Regular, 0o644, "", b"a"),
            ("./ro/", EntryType::Directory, 0o555, "", b""),
        ],
    );
    let late = scratch.deb(
        "late",
        &[
            ("./d/", EntryType::Directory, 0o750, "", b""),
            ("./d/b", EntryType::Regular, 0o644, "", b"b"),
            ("./ro/c", EntryType::Regular, 0o644, "", b"c"),
        ],
    );
    shared.unpack_deb(1, &late).unwrap();
    shared.unpack_deb(0, &early).unwrap();
    let mode = |path: &str| fs_err::metadata(dest.join(path)).unwrap().mode() & 0o7777;
    assert_ne!(mode("ro"), 0o555, "not before finish");
    shared.finish().unwrap();
    assert_eq!(mode("d"), 0o750);
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(fs_err::read(dest.join("ro/c")).unwrap(), b"c");
    // Leave the scratch directory removable.
    fs_err::set_permissions(dest.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
}
