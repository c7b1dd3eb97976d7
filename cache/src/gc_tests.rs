use super::*;
use crate::{BlobRef, EntryMeta};
use std::path::Path;
use std::time::Duration;

fn key(name: &str) -> Sha256Digest {
    Sha256Digest::of(name.as_bytes())
}

/// Marks `path` last used `days` ago.
fn age(path: &Path, days: u64) {
    let time = SystemTime::now() - Duration::from_secs(days * 86_400);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

fn blob(cache: &Cache, fill: u8, size: usize) -> BlobRef {
    let digest = cache.put_blob_bytes(&vec![fill; size]).unwrap();
    BlobRef::new(digest, size as u64)
}

#[test]
fn sizes_parse_with_and_without_units() {
    assert_eq!(parse_size("10G").unwrap(), 10_000_000_000);
    assert_eq!(parse_size("500M").unwrap(), 500_000_000);
    assert_eq!(parse_size("1.5k").unwrap(), 1500);
    assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
    assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
    assert_eq!(parse_size("64 MB").unwrap(), 64_000_000);
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert!(parse_size("ten").is_err());
    assert!(parse_size("10X").is_err());
}

#[test]
fn gc_removes_the_least_recently_used_first_and_never_what_a_kept_entry_needs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        let cache = Cache::open(root).unwrap();
        // Two layers, the older unused for 30 days; a blob both the old
        // layer and a recent build need.
        let shared = blob(&cache, 1, 5_000);
        let old_layer = blob(&cache, 2, 10_000);
        let new_layer = blob(&cache, 3, 10_000);
        let old_meta = EntryMeta::any().with_blob(old_layer).with_blob(shared);
        cache
            .put_entry(Bucket::Layer, &key("old"), &"old", old_meta)
            .unwrap();
        let new_meta = EntryMeta::any().with_blob(new_layer);
        cache
            .put_entry(Bucket::Layer, &key("new"), &"new", new_meta)
            .unwrap();
        let build_meta = EntryMeta::any().with_blob(shared);
        cache
            .put_entry(Bucket::Build, &key("build"), &"b", build_meta)
            .unwrap();
        // A .deb no entry needs, unused for 20 days.
        let deb = blob(&cache, 4, 8_000);
        // A toolchain unused for 60 days that a recent compiler links to.
        cache
            .get_or_build_tree(
                Bucket::Toolchains,
                &key("programs"),
                EntryMeta::any(),
                |dir| {
                    std::fs::write(dir.join("gcc"), vec![5u8; 20_000]).map_err(crate::io_error(dir))
                },
            )
            .unwrap();
        let compiler_meta = EntryMeta::any().with_tree(Bucket::Toolchains, key("programs"));
        cache
            .get_or_build_tree(Bucket::Compilers, &key("compiler"), compiler_meta, |dir| {
                std::os::unix::fs::symlink("../../toolchains-v1/x", dir.join("toolchain"))
                    .map_err(crate::io_error(dir))
            })
            .unwrap();
        age(&cache.entry_path(Bucket::Layer, &key("old")), 30);
        age(&cache.blob_path(&deb.digest), 20);
        age(&cache.entry_path(Bucket::Toolchains, &key("programs")), 60);
        age(&cache.tree_path(Bucket::Toolchains, &key("programs")), 60);
        // The trees' parts are accounted for; prepare a legacy directory.
        std::fs::create_dir_all(root.join("entries-v1/layer")).unwrap();
        std::fs::write(root.join("entries-v1/layer/stale.json"), vec![0u8; 700]).unwrap();
        let _ = (shared, old_layer, new_layer);
    }
    let cache = Cache::open_exclusive(root).unwrap();
    let before = cache.stats().unwrap().total_bytes;
    // Room for everything but about 10 kB: the legacy directory, then the
    // oldest entry (the toolchain) cannot go while its compiler stays, so
    // the old layer goes (with its own blob, not the shared one).
    let report = cache.gc(before - 10_000).unwrap();
    let removed: Vec<&str> = report.removed.iter().map(|r| r.what.as_str()).collect();
    assert!(removed[0].ends_with("entries-v1"), "{removed:?}");
    assert_eq!(
        removed[1],
        format!("layer-v1/{}", key("old").hex()),
        "{removed:?}"
    );
    assert_eq!(report.removed.len(), 3, "{removed:?}");
    assert!(removed[2].starts_with("blob "), "{removed:?}");
    assert_eq!(report.freed_bytes, before - report.after_bytes);
    assert!(report.after_bytes <= before - 10_000);
    assert_eq!(cache.stats().unwrap().total_bytes, report.after_bytes);
    let shared = Sha256Digest::of(&[1u8; 5_000]);
    assert!(
        cache.has_blob(&shared),
        "a blob a kept build needs was removed"
    );
    assert!(!cache.has_blob(&Sha256Digest::of(&[2u8; 10_000])));
    assert!(
        cache.has_blob(&Sha256Digest::of(&[4u8; 8_000])),
        "the deb is newer than the layer"
    );
    assert!(
        cache
            .tree_path(Bucket::Toolchains, &key("programs"))
            .is_dir()
    );

    // Down to nothing: everything goes, the toolchain after its compiler.
    let report = cache.gc(0).unwrap();
    let removed: Vec<&str> = report.removed.iter().map(|r| r.what.as_str()).collect();
    let position = |what: String| removed.iter().position(|r| *r == what).unwrap();
    assert!(
        position(format!("compilers-v1/{}", key("compiler").hex()))
            < position(format!("toolchains-v1/{}", key("programs").hex())),
        "{removed:?}"
    );
    let stats = cache.stats().unwrap();
    assert_eq!(stats.total_bytes, 0, "{stats:?}");
    assert_eq!(std::fs::read_dir(root.join("locks-v1")).unwrap().count(), 0);
    drop(cache);
    // And the cache still works.
    let cache = Cache::open(root).unwrap();
    cache.put_blob_bytes(b"again").unwrap();
}
