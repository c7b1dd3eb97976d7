//! Tests of Debian source packages, offline: picking the index from a
//! Release, finding a package in a `Sources` index, and unpacking quilt,
//! native and multi-tarball packages built here, including hostile ones,
//! with their quilt patches applied by the real `patch` program.
//! (The real `hello` from the archive is fetched, unpacked and built in
//! `src/build/c_tests.rs`.)

use super::*;
use std::collections::BTreeMap;
use std::io::Write;

fn digest(byte: u8) -> Sha256Digest {
    Sha256Digest([byte; 32])
}

fn release(paths: &[&str]) -> Release {
    let mut sha256 = BTreeMap::new();
    for (index, path) in paths.iter().enumerate() {
        sha256.insert(
            path.to_string(),
            FileHash {
                digest: digest(index as u8),
                size: index as u64,
            },
        );
    }
    Release {
        origin: None,
        label: None,
        suite: None,
        codename: None,
        version: None,
        date: None,
        valid_until: None,
        architectures: Vec::new(),
        components: vec!["main".into()],
        acquire_by_hash: false,
        not_automatic: false,
        but_automatic_upgrades: false,
        sha256,
        signer: String::new(),
        signer_primary: String::new(),
    }
}

#[test]
fn index_path_prefers_gzip_then_xz_then_plain() {
    let all = release(&[
        "main/source/Sources",
        "main/source/Sources.xz",
        "main/source/Sources.gz",
        "main/binary-amd64/Packages.gz",
    ]);
    let (path, hash) = sources_index_path(&all, "main").unwrap();
    assert_eq!(path, "main/source/Sources.gz");
    assert_eq!(hash.size, 2);
    let xz = release(&["main/source/Sources", "main/source/Sources.xz"]);
    assert_eq!(
        sources_index_path(&xz, "main").unwrap().0,
        "main/source/Sources.xz"
    );
    let plain = release(&["main/source/Sources"]);
    assert_eq!(
        sources_index_path(&plain, "main").unwrap().0,
        "main/source/Sources"
    );
    assert!(sources_index_path(&all, "contrib").is_none());
}

#[test]
fn file_urls_join_cleanly() {
    assert_eq!(
        source_file_url(
            "http://m/debian/",
            "/pool/main/h/hello/",
            "hello_2.10-3.dsc"
        ),
        "http://m/debian/pool/main/h/hello/hello_2.10-3.dsc"
    );
    assert_eq!(
        source_file_url("http://m/debian", "pool/main/h/hello", "a.tar.xz"),
        "http://m/debian/pool/main/h/hello/a.tar.xz"
    );
}

fn stanza(name: &str, version: &str, extra: &str) -> String {
    let sha = "ab".repeat(32);
    format!(
        "Package: {name}\nBinary: {name}\nVersion: {version}\nFormat: 3.0 (quilt)\n\
         Files:\n 0123 10 {name}_{version}.dsc\n\
         Checksums-Sha256:\n {sha} 10 {name}_{version}.dsc\n {sha} 2000 {name}_1.orig.tar.gz\n\
         Directory: pool/main/{first}/{name}\n{extra}\n",
        first = &name[..1]
    )
}

#[test]
fn finds_the_highest_version_of_the_named_package() {
    let index = [
        stanza("hello-traditional", "9.0-1", ""),
        stanza("hello", "2.10-2", ""),
        stanza("hello", "1:1.0-1", ""),
        stanza("hello", "2.10-10", ""),
        stanza("other", "1", ""),
    ]
    .concat();
    let found = find_source(index.as_bytes(), "Sources", "hello")
        .unwrap()
        .unwrap();
    assert_eq!(found.name, "hello");
    assert_eq!(found.version, "1:1.0-1");
    assert_eq!(found.directory, "pool/main/h/hello");
    assert_eq!(found.format, "3.0 (quilt)");
    assert_eq!(found.files.len(), 2);
    assert_eq!(found.files[1].name, "hello_1.orig.tar.gz");
    assert_eq!(found.files[1].size, 2000);
    assert_eq!(found.files[1].sha256, Sha256Digest([0xab; 32]));
    assert_eq!(found.files[1].hash().size, 2000);

    let index = [
        stanza("hello", "2.10-2", ""),
        stanza("hello", "2.10-10", ""),
    ]
    .concat();
    let found = find_source(index.as_bytes(), "Sources", "hello")
        .unwrap()
        .unwrap();
    assert_eq!(found.version, "2.10-10");
    assert!(
        find_source(index.as_bytes(), "Sources", "absent")
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_stanza_without_format_is_format_one() {
    let text = stanza("old", "1.0-1", "").replace("Format: 3.0 (quilt)\n", "");
    let found = find_source(text.as_bytes(), "Sources", "old")
        .unwrap()
        .unwrap();
    assert_eq!(found.format, "1.0");
}

#[test]
fn malformed_and_unsafe_stanzas_are_refused() {
    let cases = [
        (
            stanza("p", "1", "").replace("Directory: pool/main/p/p", "Directory: pool/../../etc"),
            "unsafe Directory",
        ),
        (
            stanza("p", "1", "").replace(" 2000 p_1.orig.tar.gz", " 2000 ../p_1.orig.tar.gz"),
            "unsafe file name",
        ),
        (
            stanza("p", "1", "").replace(" 2000 p_1.orig", " many p_1.orig"),
            "bad size",
        ),
        (
            stanza("p", "1", "").replace(&"ab".repeat(32), "abc"),
            "bad sha256",
        ),
        (
            stanza("p", "1", "").replace("Directory: pool/main/p/p\n", ""),
            "no Directory",
        ),
        (
            stanza("p", "1", "").replace("Version: 1", "Version: a b"),
            "bad version",
        ),
    ];
    for (text, expected) in cases {
        let error = find_source(text.as_bytes(), "Sources", "p").unwrap_err();
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(
            message.contains("Sources, line 1: source package p"),
            "{message}"
        );
    }
    let error = find_source(" continuation\n".as_bytes(), "the-index", "p").unwrap_err();
    assert!(matches!(error, SourceError::Index { ref origin, .. } if origin == "the-index"));
}

#[test]
fn finds_a_package_in_a_compressed_file() {
    let directory = tempfile::tempdir().unwrap();
    let text = [stanza("a", "1", ""), stanza("hello", "2.10-3", "")].concat();
    let gz = directory.path().join("blob-gz");
    let mut encoder = flate2::write::GzEncoder::new(
        fs_err::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap();
    let xz = directory.path().join("blob-xz");
    let mut encoder = xz2::write::XzEncoder::new(fs_err::File::create(&xz).unwrap(), 1);
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap();
    for (path, name) in [
        (&gz, "main/source/Sources.gz"),
        (&xz, "main/source/Sources.xz"),
    ] {
        let found = find_source_in_file(path, name, "hello").unwrap().unwrap();
        assert_eq!(found.version, "2.10-3");
    }
    let error = find_source_in_file(&directory.path().join("none"), "x", "hello").unwrap_err();
    assert!(matches!(error, SourceError::OpenIndex { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------
// Unpacking.

/// One tarball entry: a path and either file content or, for `None`, a
/// directory.
type Entry<'a> = (&'a str, Option<&'a str>);

fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        match content {
            Some(text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(text.len() as u64);
                header.set_mode(0o644);
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
            }
        }
        header.set_mtime(1_600_000_000);
        // Written raw, so that hostile paths (`..`) can be made too.
        let name = &mut header.as_gnu_mut().unwrap().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder
            .append(&header, content.unwrap_or("").as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// Writes a tarball compressed according to `name` and returns its
/// [`SourceFile`] and path.
fn tarball(directory: &Path, name: &str, entries: &[Entry]) -> (SourceFile, PathBuf) {
    let bytes = tar_bytes(entries);
    let path = directory.join(name);
    let file = fs_err::File::create(&path).unwrap();
    if name.ends_with(".gz") {
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        encoder.write_all(&bytes).unwrap();
        encoder.finish().unwrap();
    } else if name.ends_with(".xz") {
        let mut encoder = xz2::write::XzEncoder::new(file, 1);
        encoder.write_all(&bytes).unwrap();
        encoder.finish().unwrap();
    } else if name.ends_with(".zst") {
        zstd::stream::copy_encode(&bytes[..], file, 1).unwrap();
    } else {
        fs_err::write(&path, &bytes).unwrap();
    }
    let content = fs_err::read(&path).unwrap();
    (
        SourceFile {
            name: name.to_owned(),
            size: content.len() as u64,
            sha256: Sha256Digest::of(&content),
        },
        path,
    )
}

fn dsc(directory: &Path, name: &str) -> (SourceFile, PathBuf) {
    let path = directory.join(name);
    fs_err::write(&path, "Format: 3.0 (quilt)\n").unwrap();
    (
        SourceFile {
            name: name.to_owned(),
            size: 20,
            sha256: Sha256Digest::of(b"Format: 3.0 (quilt)\n"),
        },
        path,
    )
}

fn read(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap()
}

#[test]
fn quilt_packages_get_the_upstream_tree_and_debian_directory() {
    let work = tempfile::tempdir().unwrap();
    let files = vec![
        dsc(work.path(), "hello_2.10-3.dsc"),
        tarball(
            work.path(),
            "hello_2.10.orig.tar.gz",
            &[
                ("hello-2.10/", None),
                ("hello-2.10/configure", Some("#!/bin/sh\n")),
                ("hello-2.10/src/hello.c", Some("int main;\n")),
                ("hello-2.10/debian/rules", Some("upstream's own\n")),
            ],
        ),
        tarball(
            work.path(),
            "hello_2.10.orig-extra.tar.xz",
            &[("extra-1/data.txt", Some("extra\n"))],
        ),
        tarball(
            work.path(),
            "hello_2.10-3.debian.tar.xz",
            &[
                ("debian/", None),
                ("debian/control", Some("Source: hello\n")),
                ("debian/patches/series", Some("# no patches yet\n\n")),
            ],
        ),
    ];
    let mut files = files;
    // Verified copies usually live in the cache, named by their digest: the
    // compression is told by the name in the package, not the path.
    let blob = work.path().join(files[1].0.sha256.hex());
    fs_err::rename(&files[1].1, &blob).unwrap();
    files[1].1 = blob;
    let dest = work.path().join("out");
    let tree = unpack_source(&files, &dest).unwrap();
    assert_eq!(tree, dest.join("hello-2.10"));
    assert_eq!(read(&tree.join("configure")), "#!/bin/sh\n");
    assert_eq!(read(&tree.join("src/hello.c")), "int main;\n");
    assert_eq!(read(&tree.join("extra/data.txt")), "extra\n");
    assert_eq!(read(&tree.join("debian/control")), "Source: hello\n");
    assert_eq!(
        read(&tree.join("debian/patches/series")),
        "# no patches yet\n\n"
    );
    assert!(
        !tree.join("debian/rules").exists(),
        "upstream debian/ replaced"
    );
    // Modification times survive (make depends on them).
    let modified = fs_err::metadata(tree.join("configure"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        modified,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000)
    );
    // Nothing else is left in `dest`.
    let mut names: Vec<String> = fs_err::read_dir(&dest)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hello-2.10"]);

    // A second unpack into the same place is refused.
    let error = unpack_source(&files, &dest).unwrap_err();
    assert!(matches!(error, SourceError::Layout { .. }), "{error:?}");
}

#[test]
fn native_packages_and_tarballs_without_a_top_directory() {
    let work = tempfile::tempdir().unwrap();
    let native = tarball(
        work.path(),
        "tool_1.2.tar.zst",
        &[
            ("tool-1.2/Makefile", Some("all:\n")),
            ("tool-1.2/debian/control", Some("Source: tool\n")),
        ],
    );
    let tree = unpack_source(&[native], &work.path().join("a")).unwrap();
    assert_eq!(tree, work.path().join("a/tool-1.2"));
    assert_eq!(read(&tree.join("Makefile")), "all:\n");
    assert_eq!(read(&tree.join("debian/control")), "Source: tool\n");

    let flat = tarball(
        work.path(),
        "flat_3.tar",
        &[("Makefile", Some("x\n")), ("README", Some("y\n"))],
    );
    let tree = unpack_source(&[flat], &work.path().join("b")).unwrap();
    assert_eq!(tree, work.path().join("b/flat-3"));
    assert_eq!(read(&tree.join("README")), "y\n");
}

#[test]
fn bzip2_tarballs_go_through_the_bzip2_program() {
    let available = Command::new("bzip2")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !available {
        eprintln!("skipped: no bzip2 program");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (_, plain) = tarball(work.path(), "b_1.tar", &[("b-1/file", Some("bz\n"))]);
    let status = Command::new("bzip2").arg(&plain).status().unwrap();
    assert!(status.success());
    let path = work.path().join("b_1.tar.bz2");
    let file = SourceFile {
        name: "b_1.tar.bz2".into(),
        size: 0,
        sha256: digest(0),
    };
    let tree = unpack_source(&[(file.clone(), path.clone())], &work.path().join("out")).unwrap();
    assert_eq!(read(&tree.join("file")), "bz\n");

    // A corrupt one fails and leaves nothing behind.
    fs_err::write(&path, b"BZh9 not really").unwrap();
    let dest = work.path().join("bad");
    assert!(unpack_source(&[(file, path)], &dest).is_err());
    assert_eq!(fs_err::read_dir(&dest).unwrap().count(), 0);
}

#[test]
fn missing_and_ambiguous_tarballs_are_errors() {
    let work = tempfile::tempdir().unwrap();
    let orig = tarball(work.path(), "p_1.orig.tar.gz", &[("p-1/a", Some("a"))]);
    let debian = tarball(
        work.path(),
        "p_1-1.debian.tar.xz",
        &[("debian/control", Some("c"))],
    );
    let other = tarball(work.path(), "p_2.tar.xz", &[("p-2/a", Some("a"))]);
    let diff = dsc(work.path(), "p_1-1.diff.gz");
    let dest = work.path().join("out");
    let cases: Vec<(Vec<(SourceFile, PathBuf)>, &str)> = vec![
        (vec![debian.clone()], "no upstream tarball"),
        (vec![orig.clone()], "no Debian tarball"),
        (vec![dsc(work.path(), "p_1-1.dsc")], "no tarball"),
        (vec![orig.clone(), diff], ".diff.gz"),
        (
            vec![orig.clone(), debian.clone(), other.clone()],
            "more than one",
        ),
        (vec![other.clone(), other], "more than one"),
    ];
    for (files, expected) in cases {
        let message = unpack_source(&files, &dest).unwrap_err().to_string();
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("p_"), "{message}");
    }
}

#[test]
fn hostile_tarballs_are_refused_and_leave_nothing() {
    let work = tempfile::tempdir().unwrap();
    let escape = tarball(
        work.path(),
        "evil_1.orig.tar.gz",
        &[("evil-1/../../outside", Some("pwned\n"))],
    );
    let debian = tarball(
        work.path(),
        "evil_1-1.debian.tar.xz",
        &[("debian/control", Some("c"))],
    );
    let dest = work.path().join("out");
    let error = unpack_source(&[escape, debian.clone()], &dest).unwrap_err();
    assert!(matches!(error, SourceError::Unpack { .. }), "{error:?}");
    assert!(!work.path().join("outside").exists());
    assert_eq!(fs_err::read_dir(&dest).unwrap().count(), 0);

    // A Debian tarball may hold debian/ only.
    let orig = tarball(
        work.path(),
        "evil_1.orig.tar.gz",
        &[("evil-1/a", Some("a"))],
    );
    let sneaky = tarball(
        work.path(),
        "evil_1-2.debian.tar.xz",
        &[("debian/control", Some("c")), ("src/main.c", Some("x"))],
    );
    let message = unpack_source(&[orig.clone(), sneaky], &dest)
        .unwrap_err()
        .to_string();
    assert!(message.contains("only the directory debian/"), "{message}");
    assert_eq!(fs_err::read_dir(&dest).unwrap().count(), 0);

    // The same upstream tarball with a proper Debian tarball unpacks.
    let unpacked = unpack_source(&[orig, debian], &dest).unwrap();
    assert!(unpacked.join("debian/control").is_file());
}

// ---------------------------------------------------------------------------
// Quilt patches.

const HELLO_C: &str =
    "#include <stdio.h>\nint main(void) {\n    puts(\"hello\");\n    return 0;\n}\n";

/// Changes `src/hello.c` and creates `src/new.h`; made with `diff -u` of
/// `a/` and `b/` trees, so it wants `-p1`. A header comes first, as in
/// Debian's DEP-3 patches.
const GREETING_PATCH: &str = concat!(
    "Description: greet the world\n",
    "--- a/src/hello.c\n",
    "+++ b/src/hello.c\n",
    "@@ -1,5 +1,6 @@\n",
    " #include <stdio.h>\n",
    "+#include \"new.h\"\n",
    " int main(void) {\n",
    "-    puts(\"hello\");\n",
    "+    puts(GREETING);\n",
    "     return 0;\n",
    " }\n",
    "--- /dev/null\n",
    "+++ b/src/new.h\n",
    "@@ -0,0 +1 @@\n",
    "+#define GREETING \"hello, world\"\n",
);

/// Changes the file [`GREETING_PATCH`] creates, so it applies only after
/// it; its paths have no `a/`, `b/` prefix, so it wants `-p0`.
const WORLD_PATCH: &str = "--- src/new.h\n\
+++ src/new.h\n\
@@ -1 +1 @@\n\
-#define GREETING \"hello, world\"\n\
+#define GREETING \"hello, patched world\"\n";

/// A `3.0 (quilt)` package `hello 2.10-3` whose Debian tarball holds
/// `debian_entries` besides `debian/control`.
fn quilt_package(directory: &Path, debian_entries: &[Entry]) -> Vec<(SourceFile, PathBuf)> {
    let mut entries: Vec<Entry> = vec![("debian/control", Some("Source: hello\n"))];
    entries.extend_from_slice(debian_entries);
    vec![
        tarball(
            directory,
            "hello_2.10.orig.tar.gz",
            &[
                ("hello-2.10/configure", Some("#!/bin/sh\n")),
                ("hello-2.10/src/hello.c", Some(HELLO_C)),
            ],
        ),
        tarball(directory, "hello_2.10-3.debian.tar.xz", &entries),
    ]
}

fn modified_seconds(path: &Path) -> u64 {
    fs_err::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn quilt_patches_are_applied_in_series_order_with_their_strip_level() {
    let work = tempfile::tempdir().unwrap();
    let series = "# Applied in this order.\n\n01-greeting.patch\n  \nupstream/02-world.patch -p0  # made with plain diff\n";
    let files = quilt_package(
        work.path(),
        &[
            ("debian/patches/series", Some(series)),
            ("debian/patches/01-greeting.patch", Some(GREETING_PATCH)),
            ("debian/patches/upstream/02-world.patch", Some(WORLD_PATCH)),
        ],
    );
    let dest = work.path().join("out");
    let tree = unpack_source(&files, &dest).unwrap();
    assert_eq!(
        read(&tree.join("src/hello.c")),
        "#include <stdio.h>\n#include \"new.h\"\nint main(void) {\n    puts(GREETING);\n    return 0;\n}\n"
    );
    assert_eq!(
        read(&tree.join("src/new.h")),
        "#define GREETING \"hello, patched world\"\n"
    );
    assert_eq!(read(&tree.join("configure")), "#!/bin/sh\n");
    // debian/ is left as it came: series and patches stay, nothing is added
    // (no .pc/, no backups, no rejects).
    assert_eq!(read(&tree.join("debian/patches/series")), series);
    assert_eq!(
        read(&tree.join("debian/patches/01-greeting.patch")),
        GREETING_PATCH
    );
    let mut names: Vec<String> = fs_err::read_dir(tree.join("src"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hello.c", "new.h"]);
    assert!(!tree.join(".pc").exists());
    // Patched and created files are one second newer than the newest file
    // of the package; the others keep their time.
    assert_eq!(modified_seconds(&tree.join("src/hello.c")), 1_600_000_001);
    assert_eq!(modified_seconds(&tree.join("src/new.h")), 1_600_000_001);
    assert_eq!(modified_seconds(&tree.join("configure")), 1_600_000_000);
    assert_eq!(
        modified_seconds(&tree.join("debian/patches/series")),
        1_600_000_000
    );
}

#[test]
fn the_debian_vendor_series_wins_over_the_plain_one() {
    let work = tempfile::tempdir().unwrap();
    let files = quilt_package(
        work.path(),
        &[
            ("debian/patches/debian.series", Some("01-greeting.patch\n")),
            ("debian/patches/series", Some("absent.patch\n")),
            ("debian/patches/01-greeting.patch", Some(GREETING_PATCH)),
        ],
    );
    let tree = unpack_source(&files, &work.path().join("out")).unwrap();
    assert_eq!(
        read(&tree.join("src/new.h")),
        "#define GREETING \"hello, world\"\n"
    );
}

#[test]
fn a_patch_that_does_not_apply_is_an_error_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let broken = WORLD_PATCH.replace("hello, world", "goodbye, world");
    let files = quilt_package(
        work.path(),
        &[
            (
                "debian/patches/series",
                Some("01-greeting.patch\n02-broken.patch -p0\n"),
            ),
            ("debian/patches/01-greeting.patch", Some(GREETING_PATCH)),
            ("debian/patches/02-broken.patch", Some(&broken)),
        ],
    );
    let dest = work.path().join("out");
    let error = unpack_source(&files, &dest).unwrap_err();
    assert!(matches!(error, SourceError::Patch { .. }), "{error:?}");
    let message = error.to_string();
    for expected in [
        "source package hello 2.10-3",
        "debian/patches/02-broken.patch does not apply",
        "Hunk #1 FAILED",
        "dpkg-source -x",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    assert_eq!(fs_err::read_dir(&dest).unwrap().count(), 0);

    // A series naming a patch that is not there is an error too.
    let files = quilt_package(
        work.path(),
        &[("debian/patches/series", Some("missing.patch\n"))],
    );
    let message = unpack_source(&files, &dest).unwrap_err().to_string();
    assert!(message.contains("missing.patch"), "{message}");
    assert!(message.contains("debian/patches/series"), "{message}");
}

#[test]
fn series_entries_outside_debian_patches_are_refused() {
    let work = tempfile::tempdir().unwrap();
    for entry in ["../x.patch", "upstream/../../x.patch", "/etc/passwd"] {
        let files = quilt_package(
            work.path(),
            &[
                ("debian/patches/series", Some(&format!("{entry}\n"))),
                ("debian/x.patch", Some(GREETING_PATCH)),
            ],
        );
        let dest = work.path().join("out");
        let error = unpack_source(&files, &dest).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SourceError::Series { .. }), "{error:?}");
        assert!(message.contains("source package hello 2.10-3"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        assert_eq!(fs_err::read_dir(&dest).unwrap().count(), 0);
    }

    // Nor may a symlink lead a patch out of the tree.
    let outside = work.path().join("outside.patch");
    fs_err::write(&outside, GREETING_PATCH).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in [
        ("debian/control", "Source: hello\n"),
        ("debian/patches/series", "link.patch\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    builder
        .append_link(&mut header, "debian/patches/link.patch", &outside)
        .unwrap();
    let debian = work.path().join("hello_2.10-3.debian.tar");
    fs_err::write(&debian, builder.into_inner().unwrap()).unwrap();
    let mut files = quilt_package(work.path(), &[]);
    files[1] = (
        SourceFile {
            name: "hello_2.10-3.debian.tar".into(),
            size: 0,
            sha256: digest(0),
        },
        debian,
    );
    let error = unpack_source(&files, &work.path().join("linked")).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("leads outside"), "{error:?}");
}

#[test]
fn series_lines_take_comments_and_strip_levels() {
    let text =
        "# header\n\n  a.patch\nb#1.patch -p0 # a comment -p3\nc.patch -pab\nd.patch -p2 -p3\n";
    let entries = parse_series(text).unwrap();
    let pairs: Vec<(&str, u32)> = entries
        .iter()
        .map(|entry| (entry.patch.as_str(), entry.strip))
        .collect();
    assert_eq!(
        pairs,
        [
            ("a.patch", 1),
            ("b#1.patch", 0),
            ("c.patch", 1),
            ("d.patch", 3)
        ]
    );
    assert_eq!(parse_series("").unwrap(), []);
    for (text, expected) in [
        ("a.patch\nb.patch -R\n", "line 2: unsupported option \"-R\""),
        ("a.patch -p\n", "line 1: unsupported option \"-p\""),
        ("a.patch -px\n", "unsupported option \"-px\""),
        (
            "x\n../a.patch\n",
            "line 2: the patch \"../a.patch\" is outside",
        ),
    ] {
        let message = parse_series(text).unwrap_err();
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
}
