use super::*;
use crate::debian::deb::tests::{TestFile, build_test_deb, write_deb_with_raw_data};

const EPOCH: u64 = 1_000_000;

/// One entry of a layer, read back with the tar crate.
#[derive(Debug)]
struct ReadEntry {
    path: String,
    kind: EntryType,
    uid: u64,
    gid: u64,
    user: String,
    mtime: u64,
    mode: u32,
    link: Option<String>,
    contents: Vec<u8>,
}

fn read_layer(gzip: &[u8]) -> (Vec<ReadEntry>, Vec<u8>) {
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(gzip)
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let entries = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            ReadEntry {
                path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
                kind: header.entry_type(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                user: header.username().unwrap().unwrap_or_default().to_owned(),
                mtime: header.mtime().unwrap(),
                mode: header.mode().unwrap(),
                link: entry
                    .link_name_bytes()
                    .map(|link| String::from_utf8(link.into_owned()).unwrap()),
                contents,
            }
        })
        .collect();
    (entries, tar_bytes)
}

fn long_path() -> String {
    format!(
        "usr/share/alpha/{}/{}/file.txt",
        "d".repeat(60),
        "e".repeat(50)
    )
}

/// Two real packages sharing `usr/`: alpha has a program, a symlink, a
/// hard link, a path over 100 bytes, a postinst and md5sums.
fn two_packages(directory: &Path) -> (PathBuf, PathBuf) {
    let long = long_path();
    let alpha = build_test_deb(
        directory,
        "alpha",
        &[
            TestFile::Executable("usr/bin/alpha", b"#!/bin/sh\necho alpha\n"),
            TestFile::Symlink("usr/bin/alpha-link", "alpha"),
            TestFile::HardLink("usr/bin/alpha-hard", "usr/bin/alpha"),
            TestFile::Regular(&long, b"long"),
            TestFile::Symlink("usr/bin/alpha-far", &format!("../{long}")),
        ],
        &[("postinst", "#!/bin/sh\nexit 0\n")],
        Some("00000000000000000000000000000000  usr/bin/alpha\n"),
        "xz",
    );
    let beta = build_test_deb(
        directory,
        "beta",
        &[TestFile::Regular("usr/share/beta/readme", b"beta")],
        &[],
        None,
        "gzip",
    );
    (alpha, beta)
}

fn layer_bytes(packages: &[LayerPackage], level: u32) -> (Vec<u8>, LayerOutput) {
    let mut out = Vec::new();
    let options = LayerOptions {
        epoch: Some(EPOCH),
        compression_level: level,
        filter: crate::image::filter::PathFilter::keep_all(),
        merged_usr: true,
    };
    let output = write_layer(packages, &options, &mut out).unwrap();
    (out, output)
}

#[test]
fn packages_become_one_normalised_layer_with_status_records() {
    let directory = tempfile::tempdir().unwrap();
    let (alpha, beta) = two_packages(directory.path());
    let packages = [
        LayerPackage {
            name: "alpha",
            deb: &alpha,
        },
        LayerPackage {
            name: "beta",
            deb: &beta,
        },
    ];
    let (bytes, output) = layer_bytes(&packages, 6);
    let (entries, tar_bytes) = read_layer(&bytes);

    assert_eq!(output.digest, Sha256Digest::of(&bytes));
    assert_eq!(output.size, bytes.len() as u64);
    assert_eq!(output.diff_id, Sha256Digest::of(&tar_bytes));
    assert_eq!(output.uncompressed_size, tar_bytes.len() as u64);
    assert_eq!(output.entries, entries.len() as u64);
    assert_eq!(
        output.skipped_scripts,
        [("alpha".to_owned(), vec!["postinst".to_owned()])]
    );
    // A proper end of archive: two zero blocks after the last entry.
    assert!(tar_bytes.ends_with(&[0u8; 1024]));

    let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    let unique: HashSet<&str> = paths.iter().copied().collect();
    assert_eq!(unique.len(), paths.len(), "duplicate entries: {paths:?}");
    for entry in &entries {
        assert!(
            !entry.path.starts_with('/') && !entry.path.starts_with("./"),
            "{}",
            entry.path
        );
        assert_eq!(
            entry.kind == EntryType::Directory,
            entry.path.ends_with('/'),
            "{}",
            entry.path
        );
        assert_eq!(
            (entry.uid, entry.gid, entry.user.as_str()),
            (0, 0, "root"),
            "{}",
            entry.path
        );
        assert_eq!(
            entry.mtime, EPOCH,
            "{} keeps its mtime above the epoch",
            entry.path
        );
    }
    for expected in [
        "usr/",
        "usr/bin/",
        "usr/share/",
        "usr/share/beta/readme",
        "var/lib/dpkg/status.d/",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    let find = |path: &str| entries.iter().find(|entry| entry.path == path).unwrap();
    assert_eq!(find("usr/bin/alpha").mode, 0o755);
    assert_eq!(find("usr/bin/alpha").contents, b"#!/bin/sh\necho alpha\n");
    assert_eq!(find("usr/bin/alpha-link").kind, EntryType::Symlink);
    assert_eq!(find("usr/bin/alpha-link").link.as_deref(), Some("alpha"));
    assert_eq!(find("usr/bin/alpha-hard").kind, EntryType::Link);
    assert_eq!(
        find("usr/bin/alpha-hard").link.as_deref(),
        Some("usr/bin/alpha")
    );
    assert_eq!(find(&long_path()).contents, b"long");
    let far = find("usr/bin/alpha-far").link.clone().unwrap();
    assert_eq!(
        far,
        format!("../{}", long_path()),
        "a link target over 100 bytes"
    );

    let status = String::from_utf8(find("var/lib/dpkg/status.d/alpha").contents.clone()).unwrap();
    assert!(
        status.starts_with("Package: alpha\nStatus: install ok installed\nVersion: 1.0-1\n"),
        "{status}"
    );
    assert_eq!(
        find("var/lib/dpkg/status.d/alpha.md5sums").contents,
        b"00000000000000000000000000000000  usr/bin/alpha\n"
    );
    assert!(paths.contains(&"var/lib/dpkg/status.d/beta"));
    assert!(!paths.contains(&"var/lib/dpkg/status.d/beta.md5sums"));
    // Status records come after each package's own files.
    let position = |path: &str| {
        paths
            .iter()
            .position(|candidate| *candidate == path)
            .unwrap()
    };
    assert!(position("var/lib/dpkg/status.d/alpha") < position("usr/share/beta/readme"));
}

#[test]
fn the_same_inputs_give_byte_identical_layers() {
    let directory = tempfile::tempdir().unwrap();
    let (alpha, beta) = two_packages(directory.path());
    let packages = [
        LayerPackage {
            name: "alpha",
            deb: &alpha,
        },
        LayerPackage {
            name: "beta",
            deb: &beta,
        },
    ];
    let (first, first_output) = layer_bytes(&packages, 6);
    let (second, second_output) = layer_bytes(&packages, 6);
    assert_eq!(first, second);
    assert_eq!(first_output, second_output);
    // The compression level changes the blob but not the diff_id.
    let (fast, fast_output) = layer_bytes(&packages, 1);
    assert_eq!(fast_output.diff_id, first_output.diff_id);
    assert_ne!(fast, first);
}

fn layer_error(deb: &Path, package: &str) -> LayerError {
    let options = LayerOptions {
        epoch: Some(EPOCH),
        compression_level: 1,
        filter: crate::image::filter::PathFilter::keep_all(),
        merged_usr: true,
    };
    write_layer(&[LayerPackage { name: package, deb }], &options, io::sink()).unwrap_err()
}

#[test]
fn a_path_escaping_the_root_is_refused_with_package_and_path() {
    let directory = tempfile::tempdir().unwrap();
    let deb = directory.path().join("evil.deb");
    write_deb_with_raw_data(
        &deb,
        "evil",
        &[
            ("./usr/", EntryType::Directory, 0, "", b""),
            ("./../escape", EntryType::Regular, 0, "", b"x"),
        ],
    );
    let error = layer_error(&deb, "evil");
    assert!(
        matches!(&error, LayerError::UnsafeEntry { package, path, problem: UnsafeEntry::ParentComponent, .. } if package == "evil" && path == "./../escape"),
        "{error}"
    );
    // Version and architecture come from the package's control file.
    assert!(
        error
            .to_string()
            .starts_with("package evil 1 (all): `./../escape` has a `..` component"),
        "{error}"
    );
}

#[test]
fn a_hard_link_to_a_file_not_in_the_layer_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let deb = directory.path().join("links.deb");
    write_deb_with_raw_data(
        &deb,
        "links",
        &[(
            "./usr/bin/tool",
            EntryType::Link,
            0,
            "./usr/bin/missing",
            b"",
        )],
    );
    let error = layer_error(&deb, "links");
    assert!(
        matches!(&error, LayerError::UnsafeEntry { problem: UnsafeEntry::HardLinkOutsideLayer { target }, .. } if target == "./usr/bin/missing"),
        "{error}"
    );
    write_deb_with_raw_data(
        &deb,
        "links",
        &[(
            "./usr/bin/tool",
            EntryType::Link,
            0,
            "../../etc/shadow",
            b"",
        )],
    );
    assert!(matches!(
        layer_error(&deb, "links"),
        LayerError::UnsafeEntry {
            problem: UnsafeEntry::HardLinkParentComponent { .. },
            ..
        }
    ));
}

#[test]
fn non_root_owners_and_old_mtimes_are_kept_and_absolute_paths_made_relative() {
    let directory = tempfile::tempdir().unwrap();
    let deb = directory.path().join("owned.deb");
    write_deb_with_raw_data(
        &deb,
        "owned",
        &[
            ("./var/", EntryType::Directory, 0, "", b""),
            ("/var/games/", EntryType::Directory, 5, "", b""),
            ("var/games/score", EntryType::Regular, 0, "", b"1"),
            ("./dev/null-ish", EntryType::Fifo, 0, "", b""),
        ],
    );
    let mut out = Vec::new();
    let options = LayerOptions {
        epoch: Some(EPOCH),
        compression_level: 1,
        filter: crate::image::filter::PathFilter::keep_all(),
        merged_usr: true,
    };
    write_layer(
        &[LayerPackage {
            name: "owned",
            deb: &deb,
        }],
        &options,
        &mut out,
    )
    .unwrap();
    let (entries, _) = read_layer(&out);
    let games = entries
        .iter()
        .find(|entry| entry.path == "var/games/")
        .unwrap();
    assert_eq!(
        (games.uid, games.gid, games.user.as_str(), games.mtime),
        (5, 5, "someone", 12_345)
    );
    let score = entries
        .iter()
        .find(|entry| entry.path == "var/games/score")
        .unwrap();
    assert_eq!((score.uid, score.user.as_str()), (0, "root"));
    assert!(
        entries
            .iter()
            .any(|entry| entry.path == "dev/null-ish" && entry.kind == EntryType::Fifo)
    );
    // `var/` came from the package, so the status record does not repeat it.
    assert_eq!(
        entries
            .iter()
            .find(|entry| entry.path == "var/")
            .unwrap()
            .mtime,
        12_345
    );
    assert_eq!(
        entries.iter().filter(|entry| entry.path == "var/").count(),
        1
    );
    assert_eq!(
        entries
            .iter()
            .filter(|entry| entry.path == "var/lib/")
            .count(),
        1
    );
}

#[test]
fn a_deb_for_another_package_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let deb = directory.path().join("other.deb");
    write_deb_with_raw_data(&deb, "other", &[]);
    assert!(matches!(
        layer_error(&deb, "expected"),
        LayerError::PackageNameMismatch { .. }
    ));
    assert!(matches!(
        layer_error(&deb, "../x"),
        LayerError::InvalidPackageName { .. }
    ));
}

#[test]
fn errors_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<LayerError>();
    assert_send_sync::<DebError>();
}

#[test]
fn a_small_layer_leaves_documentation_out_and_counts_its_bytes() {
    let directory = tempfile::tempdir().unwrap();
    let deb = build_test_deb(
        directory.path(),
        "docs",
        &[
            TestFile::Executable("usr/bin/docs", b"#!/bin/sh\n"),
            TestFile::Regular("usr/share/doc/docs/README", b"12345"),
            TestFile::Regular("usr/share/doc/docs/copyright", b"licence"),
            TestFile::Symlink("usr/share/doc/docs-data", "docs"),
            TestFile::Regular("usr/share/man/man1/docs.1.gz", b"man"),
            TestFile::HardLink(
                "usr/share/man/man1/docs-too.1.gz",
                "usr/share/man/man1/docs.1.gz",
            ),
            TestFile::HardLink("usr/share/zz/readme", "usr/share/doc/docs/README"),
            TestFile::Symlink("usr/share/man/man1/alias.1.gz", "docs.1.gz"),
            TestFile::Regular("usr/share/locale/de/LC_MESSAGES/docs.mo", b"de"),
        ],
        &[],
        None,
        "gzip",
    );
    let mut out = Vec::new();
    let options = LayerOptions {
        epoch: Some(EPOCH),
        compression_level: 1,
        filter: crate::image::filter::PathFilter::small::<&str>(&[]),
        merged_usr: true,
    };
    let package = LayerPackage {
        name: "docs",
        deb: &deb,
    };
    let output = write_layer(&[package], &options, &mut out).unwrap();
    let (entries, _) = read_layer(&out);
    let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    for kept in [
        "usr/bin/docs",
        "usr/share/doc/docs/",
        "usr/share/doc/docs/copyright",
        "usr/share/doc/docs-data",
        "usr/share/man/man1/",
        "usr/share/locale/de/LC_MESSAGES/",
    ] {
        assert!(paths.contains(&kept), "{kept} missing from {paths:?}");
    }
    for gone in [
        "usr/share/doc/docs/README",
        "usr/share/man/man1/docs.1.gz",
        "usr/share/man/man1/docs-too.1.gz",
        "usr/share/man/man1/alias.1.gz",
        "usr/share/zz/readme",
        "usr/share/locale/de/LC_MESSAGES/docs.mo",
    ] {
        assert!(!paths.contains(&gone), "{gone} in {paths:?}");
    }
    assert_eq!(output.left_out_bytes, 5 + 3 + 2);
    assert_eq!(output.left_out_entries, 6);

    let (_, everything) = layer_bytes(&[package], 1);
    assert_eq!(everything.left_out_bytes, 0);
    assert!(everything.uncompressed_size > output.uncompressed_size);
}

/// A bookworm-style package: programs and libraries under `/bin`, `/sbin`
/// and `/lib`, with relative symlinks across them and a hard link.
fn unmerged_package(directory: &Path) -> PathBuf {
    build_test_deb(
        directory,
        "unmerged",
        &[
            TestFile::Executable("bin/dash", b"#!dash\n"),
            TestFile::Symlink("bin/sh", "dash"),
            TestFile::Symlink("bin/other", "../usr/bin/real"),
            TestFile::Executable("usr/bin/real", b"#!real\n"),
            TestFile::HardLink("sbin/dash-hard", "bin/dash"),
            TestFile::Regular("lib/x86_64-linux-gnu/libfoo.so.1.2", b"foo"),
            TestFile::Symlink("lib/x86_64-linux-gnu/libfoo.so.1", "libfoo.so.1.2"),
            TestFile::Symlink(
                "lib/x86_64-linux-gnu/libbar.so.1",
                "../../usr/lib/x86_64-linux-gnu/libbar.so.1.0",
            ),
            TestFile::Regular("usr/lib/x86_64-linux-gnu/libbar.so.1.0", b"bar"),
            TestFile::Symlink(
                "usr/lib/x86_64-linux-gnu/libfoo.so",
                "../../../lib/x86_64-linux-gnu/libfoo.so.1",
            ),
            TestFile::Symlink("usr/bin/up", "../../lib/../etc/motd"),
            TestFile::Regular("etc/motd", b"motd"),
        ],
        &[],
        Some("00000000000000000000000000000000  bin/dash\n"),
        "xz",
    )
}

#[test]
fn entries_under_bin_sbin_and_lib_move_under_usr_and_links_still_resolve() {
    let directory = tempfile::tempdir().unwrap();
    let deb = unmerged_package(directory.path());
    let package = LayerPackage {
        name: "unmerged",
        deb: &deb,
    };
    let (bytes, output) = layer_bytes(&[package], 6);
    let (entries, _) = read_layer(&bytes);
    assert_eq!(output.entries, entries.len() as u64);
    let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    for path in &paths {
        for merged in ["bin", "sbin", "lib"] {
            assert!(
                *path != format!("{merged}/") && !path.starts_with(&format!("{merged}/")),
                "{path} in {paths:?}"
            );
        }
    }
    // Every parent directory comes before what it holds.
    for (index, path) in paths.iter().enumerate() {
        let trimmed = path.trim_end_matches('/');
        if let Some((parent, _)) = trimmed.rsplit_once('/') {
            let parent = format!("{parent}/");
            assert!(
                paths[..index].contains(&parent.as_str()),
                "{parent} before {path}"
            );
        }
    }
    let link = |path: &str| {
        let entry = entries
            .iter()
            .find(|entry| entry.path == path)
            .unwrap_or_else(|| panic!("no {path} in {paths:?}"));
        (entry.kind, entry.link.clone().unwrap_or_default())
    };
    assert_eq!(link("usr/bin/sh"), (EntryType::Symlink, "dash".to_owned()));
    assert_eq!(
        link("usr/bin/other"),
        (EntryType::Symlink, "real".to_owned())
    );
    assert_eq!(
        link("usr/lib/x86_64-linux-gnu/libbar.so.1"),
        (EntryType::Symlink, "libbar.so.1.0".to_owned())
    );
    assert_eq!(
        link("usr/lib/x86_64-linux-gnu/libfoo.so.1"),
        (EntryType::Symlink, "libfoo.so.1.2".to_owned())
    );
    // Not moved, and through `/lib` to a file there: it resolves as it is.
    assert_eq!(
        link("usr/lib/x86_64-linux-gnu/libfoo.so"),
        (
            EntryType::Symlink,
            "../../../lib/x86_64-linux-gnu/libfoo.so.1".to_owned()
        )
    );
    // Not moved, but `/lib/..` is `/usr` once /lib is a symlink.
    assert_eq!(
        link("usr/bin/up"),
        (EntryType::Symlink, "../../etc/motd".to_owned())
    );
    assert_eq!(
        link("usr/sbin/dash-hard"),
        (EntryType::Link, "usr/bin/dash".to_owned())
    );
    // dpkg's own file list keeps the package's paths.
    let md5sums = entries
        .iter()
        .find(|entry| entry.path == "var/lib/dpkg/status.d/unmerged.md5sums")
        .unwrap();
    assert_eq!(
        md5sums.contents,
        b"00000000000000000000000000000000  bin/dash\n"
    );

    // Unpacked over the merged-/usr symlinks, every link names the file
    // it named before, by its old path and by its new one.
    let root = directory.path().join("root");
    fs_err::create_dir(&root).unwrap();
    for merged in super::super::usrmerge::MERGED_DIRECTORIES {
        std::os::unix::fs::symlink(format!("usr/{merged}"), root.join(merged)).unwrap();
    }
    tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]))
        .unpack(&root)
        .unwrap();
    for (path, contents) in [
        ("bin/sh", &b"#!dash\n"[..]),
        ("usr/bin/sh", b"#!dash\n"),
        ("bin/other", b"#!real\n"),
        ("sbin/dash-hard", b"#!dash\n"),
        ("lib/x86_64-linux-gnu/libfoo.so.1", b"foo"),
        ("usr/lib/x86_64-linux-gnu/libfoo.so", b"foo"),
        ("lib/x86_64-linux-gnu/libbar.so.1", b"bar"),
        ("usr/bin/up", b"motd"),
    ] {
        assert_eq!(fs_err::read(root.join(path)).unwrap(), contents, "{path}");
    }
}

fn layer_result(debs: &[(&str, &Path)]) -> Result<Vec<ReadEntry>, LayerError> {
    let options = LayerOptions {
        epoch: Some(EPOCH),
        compression_level: 1,
        filter: crate::image::filter::PathFilter::keep_all(),
        merged_usr: true,
    };
    let packages: Vec<LayerPackage> = debs
        .iter()
        .map(|(name, deb)| LayerPackage { name, deb })
        .collect();
    let mut out = Vec::new();
    write_layer(&packages, &options, &mut out)?;
    Ok(read_layer(&out).0)
}

#[test]
fn a_file_in_bin_and_in_usr_bin_is_an_error_naming_both_packages_and_paths() {
    let directory = tempfile::tempdir().unwrap();
    let both = directory.path().join("both.deb");
    write_deb_with_raw_data(
        &both,
        "both",
        &[
            ("./bin/x", EntryType::Regular, 0, "", b"old"),
            ("./usr/bin/x", EntryType::Regular, 0, "", b"new"),
        ],
    );
    let error = layer_result(&[("both", &both)]).unwrap_err();
    assert!(
        matches!(&error, LayerError::MergedUsrCollision { package, path, other_package, other_path, merged }
            if package == "both" && path == "usr/bin/x" && other_package == "both"
                && other_path == "bin/x" && merged == "/usr/bin/x"),
        "{error}"
    );
    // Across two packages of one layer.
    let first = directory.path().join("first.deb");
    let second = directory.path().join("second.deb");
    write_deb_with_raw_data(
        &first,
        "first",
        &[("./sbin/tool", EntryType::Regular, 0, "", b"a")],
    );
    write_deb_with_raw_data(
        &second,
        "second",
        &[("./usr/sbin/tool", EntryType::Regular, 0, "", b"b")],
    );
    let error = layer_result(&[("first", &first), ("second", &second)]).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("second")
            && message.contains("`usr/sbin/tool`")
            && message.contains("`sbin/tool` of package first"),
        "{message}"
    );
    // Two packages with the same unmoved file: written as before.
    let third = directory.path().join("third.deb");
    write_deb_with_raw_data(
        &third,
        "third",
        &[("./usr/sbin/tool", EntryType::Regular, 0, "", b"c")],
    );
    assert!(layer_result(&[("second", &second), ("third", &third)]).is_ok());
}

#[test]
fn a_compatibility_symlink_gives_way_to_the_file_it_names_as_usrmerge_does() {
    let directory = tempfile::tempdir().unwrap();
    let deb = directory.path().join("compat.deb");
    write_deb_with_raw_data(
        &deb,
        "compat",
        &[
            // Sorted, as dpkg-deb writes: the old place comes first.
            ("./bin/moved", EntryType::Symlink, 0, "/usr/bin/moved", b""),
            ("./bin/stays", EntryType::Regular, 0, "", b"stays"),
            ("./bin/twice", EntryType::Symlink, 0, "/usr/bin/moved", b""),
            ("./usr/bin/moved", EntryType::Regular, 0, "", b"moved"),
            (
                "./usr/bin/stays",
                EntryType::Symlink,
                0,
                "../../bin/stays",
                b"",
            ),
            ("./usr/bin/twice", EntryType::Symlink, 0, "moved", b""),
        ],
    );
    let entries = layer_result(&[("compat", &deb)]).unwrap();
    let files: Vec<(&str, EntryType, Option<&str>)> = entries
        .iter()
        .filter(|entry| entry.path.starts_with("usr/bin/") && entry.kind != EntryType::Directory)
        .map(|entry| (entry.path.as_str(), entry.kind, entry.link.as_deref()))
        .collect();
    assert_eq!(
        files,
        [
            ("usr/bin/stays", EntryType::Regular, None),
            ("usr/bin/moved", EntryType::Regular, None),
            ("usr/bin/twice", EntryType::Symlink, Some("moved")),
        ]
    );
    assert!(entries.iter().all(|entry| !entry.path.starts_with("bin")));
}

#[test]
fn a_top_level_symlink_to_usr_is_left_out_and_any_other_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let deb = directory.path().join("roots.deb");
    write_deb_with_raw_data(
        &deb,
        "roots",
        &[
            ("./", EntryType::Directory, 0, "", b""),
            ("./bin/", EntryType::Directory, 0, "", b""),
            ("./lib64", EntryType::Symlink, 0, "usr/lib64", b""),
            ("./libx32", EntryType::Symlink, 0, "/usr/libx32", b""),
        ],
    );
    let entries = layer_result(&[("roots", &deb)]).unwrap();
    assert!(
        entries.iter().all(|entry| entry.path.starts_with("var/")),
        "{entries:?}"
    );
    write_deb_with_raw_data(
        &deb,
        "roots",
        &[("./lib64", EntryType::Symlink, 0, "lib", b"")],
    );
    let error = layer_result(&[("roots", &deb)]).unwrap_err();
    assert!(
        matches!(&error, LayerError::MergedUsrRoot { package, path, kind }
            if package == "roots" && path == "./lib64" && kind == "symlink"),
        "{error}"
    );
}

#[test]
fn a_symlink_of_the_package_is_never_passed_through_merged_or_left_out() {
    let directory = tempfile::tempdir().unwrap();
    let deb = directory.path().join("evil.deb");
    let small = LayerOptions {
        filter: crate::image::filter::PathFilter::small::<&str>(&[]),
        ..LayerOptions {
            epoch: Some(EPOCH),
            compression_level: 1,
            filter: crate::image::filter::PathFilter::keep_all(),
            merged_usr: true,
        }
    };
    // `bin/evil` is `usr/bin/evil` in the image: so is what lies under it,
    // and documentation the small filter leaves out is refused all the same.
    for (link, under) in [
        ("./bin/evil", "./usr/bin/evil/x"),
        ("./usr/bin/evil", "./bin/evil/x"),
        ("./usr/share/doc/evil", "./usr/share/doc/evil/x"),
    ] {
        write_deb_with_raw_data(
            &deb,
            "evil",
            &[
                (link, EntryType::Symlink, 0, "/", b""),
                (under, EntryType::Regular, 0, "", b"x"),
            ],
        );
        let package = LayerPackage {
            name: "evil",
            deb: &deb,
        };
        let error = write_layer(&[package], &small, io::sink()).unwrap_err();
        assert!(
            matches!(&error, LayerError::UnsafeEntry { path, problem: UnsafeEntry::UnderSymlink { .. }, .. } if path == under),
            "{link} {under}: {error}"
        );
    }
    // The package's own `bin -> usr/bin` gives way to the image's, and
    // what it ships under `bin/` is written under `usr/bin/`.
    write_deb_with_raw_data(
        &deb,
        "merged",
        &[
            ("./bin", EntryType::Symlink, 0, "usr/bin", b""),
            ("./bin/tool", EntryType::Regular, 0, "", b"tool"),
        ],
    );
    let entries = layer_result(&[("merged", &deb)]).unwrap();
    assert!(entries.iter().any(|entry| entry.path == "usr/bin/tool"));
}
