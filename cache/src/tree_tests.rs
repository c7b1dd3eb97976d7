use super::*;
use crate::EntryMeta;
use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::time::{Duration, SystemTime};

fn key(name: &str) -> Sha256Digest {
    Sha256Digest::of(name.as_bytes())
}

fn set_time(path: &Path, seconds: u64) {
    fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap();
}

/// A tree with what toolchains hold: nested directories, an executable,
/// a read-only file and directory, relative and absolute symlinks, a hard
/// link, a long name, an empty directory.
fn sample_tree(dir: &Path) -> Result<(), CacheError> {
    let io = |source| CacheError::Io {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir.join("usr/bin")).map_err(io)?;
    fs::create_dir_all(dir.join("usr/lib/empty")).map_err(io)?;
    fs::write(
        dir.join("usr/bin/aarch64-linux-gnu-gcc-12"),
        b"#!/bin/sh\necho gcc\n",
    )
    .map_err(io)?;
    fs::set_permissions(
        dir.join("usr/bin/aarch64-linux-gnu-gcc-12"),
        fs::Permissions::from_mode(0o755),
    )
    .map_err(io)?;
    fs::write(dir.join("usr/lib/libx.so.1"), vec![7u8; 100_000]).map_err(io)?;
    fs::hard_link(
        dir.join("usr/lib/libx.so.1"),
        dir.join("usr/lib/libx-copy.so.1"),
    )
    .map_err(io)?;
    std::os::unix::fs::symlink("libx.so.1", dir.join("usr/lib/libx.so")).map_err(io)?;
    std::os::unix::fs::symlink("/nowhere/absolute", dir.join("usr/lib/absolute")).map_err(io)?;
    let long = "a-very-long-name-".repeat(8);
    fs::write(dir.join("usr/lib").join(&long), b"long").map_err(io)?;
    fs::write(dir.join("usr/lib/readonly"), b"ro").map_err(io)?;
    fs::set_permissions(
        dir.join("usr/lib/readonly"),
        fs::Permissions::from_mode(0o444),
    )
    .map_err(io)?;
    set_time(&dir.join("usr/bin/aarch64-linux-gnu-gcc-12"), 1_700_000_000);
    set_time(&dir.join("usr/lib/readonly"), 1_600_000_000);
    set_time(&dir.join("usr/lib/empty"), 1_500_000_000);
    fs::create_dir(dir.join("sealed")).map_err(io)?;
    fs::write(dir.join("sealed/inside"), b"x").map_err(io)?;
    fs::set_permissions(dir.join("sealed"), fs::Permissions::from_mode(0o555)).map_err(io)?;
    Ok(())
}

/// Everything about a tree that packing keeps, by path.
fn describe(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = vec![root.to_owned()];
    let mut inodes = std::collections::HashMap::new();
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let metadata = fs::symlink_metadata(&path).unwrap();
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.is_symlink() {
                lines.push(format!(
                    "{relative} -> {}",
                    fs::read_link(&path).unwrap().display()
                ));
            } else if metadata.is_dir() {
                lines.push(format!("{relative}/ {mode:o} {}", metadata.mtime()));
                pending.push(path);
            } else {
                let first = inodes
                    .entry(metadata.ino())
                    .or_insert_with(|| relative.clone())
                    .clone();
                lines.push(format!(
                    "{relative} {mode:o} {} {} linked-to:{first} {}",
                    metadata.mtime(),
                    metadata.len(),
                    Sha256Digest::of(&fs::read(&path).unwrap()).hex()
                ));
            }
        }
    }
    // Hard link groups are named by whichever path was met first.
    lines.iter_mut().for_each(|line| {
        if let Some(index) = line.find("linked-to:") {
            line.truncate(index);
        }
    });
    lines.sort();
    lines
}

/// Gives every file and directory under `to` the time of the same path
/// under `from` (deepest first: a directory's time after its contents').
fn copy_times(from: &Path, to: &Path) {
    let mut paths = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(from.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let relative = relative.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(relative.clone());
            }
            if !kind.is_symlink() {
                paths.push(relative);
            }
        }
    }
    paths.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    for path in paths {
        set_time(
            &to.join(&path),
            fs::metadata(from.join(&path)).unwrap().mtime() as u64,
        );
    }
}

fn hard_links(root: &Path) -> u64 {
    fs::metadata(root.join("usr/lib/libx.so.1"))
        .unwrap()
        .nlink()
}

#[test]
fn a_tree_is_built_once_then_found() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let failed: Result<_, CacheError> =
        cache.get_or_build_tree(Bucket::Sysroots, &key("s"), EntryMeta::any(), |dir| {
            fs::write(dir.join("half"), b"x").unwrap();
            Err(CacheError::NoTree {
                bucket: Bucket::Sysroots,
                key: key("s"),
            })
        });
    assert!(failed.is_err());
    let bucket = dir.path().join("sysroots-v3");
    assert_eq!(
        fs::read_dir(&bucket).unwrap().count(),
        0,
        "a failed build left a tree"
    );

    let mut builds = 0;
    for expected in [TreeOrigin::Built, TreeOrigin::Local] {
        let (path, origin) = cache
            .get_or_build_tree(Bucket::Sysroots, &key("s"), EntryMeta::any(), |dir| {
                builds += 1;
                sample_tree(dir)
            })
            .unwrap();
        assert_eq!(origin, expected);
        assert_eq!(path, cache.tree_path(Bucket::Sysroots, &key("s")));
        assert!(path.join("usr/lib/libx.so.1").is_file());
    }
    assert_eq!(builds, 1);
    let record: TreeRecord = cache
        .get_entry(Bucket::Sysroots, &key("s"))
        .unwrap()
        .unwrap();
    // Files (a hard link counts twice) and symlinks' targets.
    assert_eq!(record.bytes, 100_000 * 2 + 19 + 4 + 2 + 1 + 9 + 17);
    assert_eq!(record.packed, None);

    // A tree an older xbuild renamed into place, without an entry: adopted.
    let legacy = cache.tree_path(Bucket::Toolchains, &key("old"));
    fs::create_dir_all(legacy.join("bin")).unwrap();
    let (_, origin) = cache
        .get_or_build_tree(
            Bucket::Toolchains,
            &key("old"),
            EntryMeta::any(),
            |_| -> Result<(), CacheError> { panic!("an adopted tree is not built again") },
        )
        .unwrap();
    assert_eq!(origin, TreeOrigin::Local);
    assert!(
        cache
            .tree(Bucket::Toolchains, &key("old"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn pack_then_unpack_gives_the_same_tree_and_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let here = Cache::open(&dir.path().join("here")).unwrap();
    let there = Cache::open(&dir.path().join("there")).unwrap();
    let meta = EntryMeta::for_platform("x86_64-linux->aarch64-linux");
    let (original, _) = here
        .get_or_build_tree(Bucket::Toolchains, &key("t"), meta.clone(), sample_tree)
        .unwrap();
    let blob = here.pack_tree(Bucket::Toolchains, &key("t")).unwrap();
    assert_eq!(
        here.pack_tree(Bucket::Toolchains, &key("t")).unwrap(),
        blob,
        "a second pack is the first"
    );
    let entry = here
        .get_entry_with_meta::<TreeRecord>(Bucket::Toolchains, &key("t"))
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.meta.blobs,
        vec![blob],
        "the entry names its packed blob"
    );
    assert_eq!(entry.meta.platform, meta.platform);

    // Carried to another cache as a remote would: the raw entry and the blob.
    let raw = here
        .read_entry_raw(Bucket::Toolchains, &key("t"))
        .unwrap()
        .unwrap();
    there
        .write_entry_raw(Bucket::Toolchains, &key("t"), &raw.bytes)
        .unwrap();
    let bytes = fs::read(here.blob_path(&blob.digest)).unwrap();
    there.put_blob_from_reader(&bytes[..], &blob).unwrap();
    let (unpacked, origin) = there
        .get_or_build_tree(
            Bucket::Toolchains,
            &key("t"),
            EntryMeta::any(),
            |_| -> Result<(), CacheError> { panic!("a packed tree is unpacked, not built") },
        )
        .unwrap();
    assert_eq!(origin, TreeOrigin::Unpacked);
    assert_eq!(describe(&unpacked), describe(&original));
    assert_eq!(hard_links(&unpacked), 2, "the hard link was not kept");
    assert_eq!(
        fs::metadata(&unpacked).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let carried = there
        .get_entry_with_meta::<TreeRecord>(Bucket::Toolchains, &key("t"))
        .unwrap()
        .unwrap();
    assert_eq!(carried.meta, entry.meta, "the remote's meta was kept");

    // Packed again there, from the unpacked tree: the same bytes. And an
    // explicit unpack where the tree is in place keeps it.
    there.remove_entry(Bucket::Toolchains, &key("t")).unwrap();
    assert_eq!(
        there.pack_tree(Bucket::Toolchains, &key("t")).unwrap(),
        blob
    );
    assert_eq!(
        there
            .unpack_tree(Bucket::Toolchains, &key("t"), &blob)
            .unwrap(),
        unpacked
    );
    // The same tree built at another path, on another day: the same digest.
    let (copy, _) = there
        .get_or_build_tree(
            Bucket::Toolchains,
            &key("copy"),
            EntryMeta::any(),
            sample_tree,
        )
        .unwrap();
    copy_times(&original, &copy);
    assert_eq!(describe(&copy), describe(&original));
    assert_eq!(
        there.pack_tree(Bucket::Toolchains, &key("copy")).unwrap(),
        blob
    );
}

#[test]
fn a_compiler_s_relative_links_work_again_once_unpacked_beside_its_trees() {
    let dir = tempfile::tempdir().unwrap();
    let here = Cache::open(&dir.path().join("here")).unwrap();
    let there = Cache::open(&dir.path().join("there")).unwrap();
    let toolchain = key("programs");
    let compiler = key("compiler");
    let link = format!("../../toolchains-v1/{}", toolchain.hex());
    let build_programs = |dir: &Path| -> Result<(), CacheError> {
        fs::create_dir(dir.join("bin")).unwrap();
        fs::write(dir.join("bin/gcc"), b"gcc").unwrap();
        Ok(())
    };
    let build_compiler = |dir: &Path| -> Result<(), CacheError> {
        std::os::unix::fs::symlink(&link, dir.join("toolchain")).unwrap();
        Ok(())
    };
    let compiler_meta = EntryMeta::any().with_tree(Bucket::Toolchains, toolchain);
    here.get_or_build_tree(
        Bucket::Toolchains,
        &toolchain,
        EntryMeta::any(),
        build_programs,
    )
    .unwrap();
    let (built, _) = here
        .get_or_build_tree(Bucket::Compilers, &compiler, compiler_meta, build_compiler)
        .unwrap();
    assert_eq!(fs::read(built.join("toolchain/bin/gcc")).unwrap(), b"gcc");
    for (bucket, key) in [
        (Bucket::Toolchains, toolchain),
        (Bucket::Compilers, compiler),
    ] {
        let blob = here.pack_tree(bucket, &key).unwrap();
        let bytes = fs::read(here.blob_path(&blob.digest)).unwrap();
        there.put_blob_from_reader(&bytes[..], &blob).unwrap();
        let raw = here.read_entry_raw(bucket, &key).unwrap().unwrap();
        let meta = there.write_entry_raw(bucket, &key, &raw.bytes).unwrap();
        if bucket == Bucket::Compilers {
            assert_eq!(
                meta.trees,
                vec![TreeRef {
                    bucket: Bucket::Toolchains,
                    key: toolchain
                }]
            );
        }
        there.unpack_tree(bucket, &key, &blob).unwrap();
    }
    let unpacked = there.tree_path(Bucket::Compilers, &compiler);
    assert_eq!(
        fs::read_link(unpacked.join("toolchain")).unwrap(),
        Path::new(&link)
    );
    assert_eq!(
        fs::read(unpacked.join("toolchain/bin/gcc")).unwrap(),
        b"gcc"
    );
}

use crate::TreeRef;

#[test]
fn a_tampered_packed_tree_is_refused_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let here = Cache::open(&dir.path().join("here")).unwrap();
    let there = Cache::open(&dir.path().join("there")).unwrap();
    here.get_or_build_tree(Bucket::Sources, &key("src"), EntryMeta::any(), sample_tree)
        .unwrap();
    let blob = here.pack_tree(Bucket::Sources, &key("src")).unwrap();
    let mut bytes = fs::read(here.blob_path(&blob.digest)).unwrap();
    // Both a byte in the middle and one in the last block: each refused.
    for position in [bytes.len() / 2, bytes.len() - 2] {
        bytes[position] ^= 0x20;
        fs::create_dir_all(there.blob_path(&blob.digest).parent().unwrap()).unwrap();
        fs::write(there.blob_path(&blob.digest), &bytes).unwrap();
        let error = there
            .unpack_tree(Bucket::Sources, &key("src"), &blob)
            .unwrap_err();
        assert!(error.is_integrity(), "{error:?}");
        assert!(!there.tree_path(Bucket::Sources, &key("src")).exists());
        assert!(!there.has_blob(&blob.digest), "the tampered blob was kept");
        assert_eq!(
            fs::read_dir(dir.path().join("there/sources-v1"))
                .unwrap()
                .count(),
            0
        );
        bytes[position] ^= 0x20;
    }
}

/// A zstd-compressed tar whose entries are written as given, unchecked.
fn hostile_archive(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, link) in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        if !link.is_empty() {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"evil"
        } else {
            b""
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap()
}

#[test]
fn a_packed_tree_whose_paths_escape_is_refused() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().display().to_string();
    let cases: Vec<Vec<(&str, tar::EntryType, &str)>> = vec![
        vec![("../evil", Regular, "")],
        vec![("/tmp/xbuild-evil-absolute", Regular, "")],
        vec![("a/", Directory, ""), ("a/../../evil", Regular, "")],
        // Through a symlink the archive made.
        vec![("out", Symlink, &target), ("out/evil", Regular, "")],
        // A hard link to something outside.
        vec![("evil", Link, "/etc/passwd")],
        vec![("evil", Link, "../x")],
    ];
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    for (index, entries) in cases.iter().enumerate() {
        let archive = hostile_archive(entries);
        let blob = BlobRef::new(Sha256Digest::of(&archive), archive.len() as u64);
        cache.put_blob_from_reader(&archive[..], &blob).unwrap();
        let key = key(&format!("hostile-{index}"));
        let error = cache.unpack_tree(Bucket::Sources, &key, &blob).unwrap_err();
        assert!(
            matches!(error, CacheError::UnsafeTreePath { .. }),
            "case {index}: {error:?}"
        );
        assert!(!cache.tree_path(Bucket::Sources, &key).exists());
        assert!(!cache.has_blob(&blob.digest));
    }
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "something escaped"
    );
    assert!(!Path::new("/tmp/xbuild-evil-absolute").exists());
    assert!(!dir.path().join("evil").exists());
}
