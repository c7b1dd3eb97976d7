use super::*;
use crate::{BlobRef, EntryMeta, TreeOrigin};
use std::path::Path;

fn key(name: &str) -> Sha256Digest {
    Sha256Digest::of(name.as_bytes())
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

fn tree(cache: &Cache, bucket: Bucket, name: &str, meta: EntryMeta) -> PathBuf {
    cache
        .get_or_build_tree(bucket, &key(name), meta, |dir| {
            std::fs::write(dir.join("file"), name).map_err(crate::io_error(dir))
        })
        .unwrap()
        .0
}

#[test]
fn verify_finds_a_flipped_byte_drops_what_is_corrupt_and_leaves_the_cache_clean() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        let cache = Cache::open(root).unwrap();
        let layer = cache.put_blob_bytes(&[7u8; 4096]).unwrap();
        let meta = EntryMeta::for_platform("aarch64-linux").with_blob(BlobRef::new(layer, 4096));
        cache
            .put_entry(Bucket::Layer, &key("layer"), &"r", meta)
            .unwrap();
        cache
            .put_entry(Bucket::Resolution, &key("fine"), &"ok", EntryMeta::any())
            .unwrap();
        flip_a_byte(&cache.blob_path(&layer));
        // A packed source tree changed in place afterwards.
        let sources = tree(&cache, Bucket::Sources, "src", EntryMeta::any());
        cache.pack_tree(Bucket::Sources, &key("src")).unwrap();
        std::fs::write(sources.join("file"), b"edited").unwrap();
        // A compiler whose toolchain tree vanished (neither in place nor packed).
        let programs = tree(&cache, Bucket::Toolchains, "programs", EntryMeta::any());
        let meta = EntryMeta::any().with_tree(Bucket::Toolchains, key("programs"));
        tree(&cache, Bucket::Compilers, "compiler", meta);
        std::fs::remove_dir_all(programs).unwrap();
        // A torn entry file.
        let torn = root
            .join("entries-v2/build-v1")
            .join(format!("{}.json", key("b").hex()));
        std::fs::create_dir_all(torn.parent().unwrap()).unwrap();
        std::fs::write(&torn, b"{\"bucket\":").unwrap();
    }
    let cache = Cache::open_exclusive(root).unwrap();
    let report = cache.verify().unwrap();
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(|problem| {
            format!(
                "{} {}: {}",
                problem.subject,
                problem.path.display(),
                problem.problem
            )
        })
        .collect();
    let layer = Sha256Digest::of(&[7u8; 4096]);
    let expect = |needle: &str| {
        assert!(
            problems.iter().any(|problem| problem.contains(needle)),
            "no problem mentions {needle:?}: {problems:#?}"
        );
    };
    expect(&format!("blob {}", layer.oci()));
    expect("its content hashes to");
    expect(&format!("entry layer-v1/{}", key("layer").hex()));
    expect(&format!("tree sources-v1/{}", key("src").hex()));
    expect("changed since it was packed");
    expect(&format!("tree toolchains-v1/{}", key("programs").hex()));
    expect(&format!(
        "needs the tree toolchains-v1/{}",
        key("programs").hex()
    ));
    expect("does not decode");
    assert_eq!(report.problems.len(), 6, "{problems:#?}");
    assert!(!cache.has_blob(&layer));
    assert_eq!(
        cache
            .get_entry::<String>(Bucket::Layer, &key("layer"))
            .unwrap(),
        None
    );
    assert_eq!(
        cache
            .get_entry::<String>(Bucket::Resolution, &key("fine"))
            .unwrap()
            .as_deref(),
        Some("ok"),
        "a sound entry was removed"
    );
    assert!(
        cache
            .tree(Bucket::Compilers, &key("compiler"))
            .unwrap()
            .is_none()
    );

    // Clean now; and the changed tree comes back from its packed blob.
    let again = cache.verify().unwrap();
    assert!(again.problems.is_empty(), "{:#?}", again.problems);
    assert_eq!((again.trees, again.packed_trees), (1, 1));
    let (sources, origin) = cache
        .get_or_build_tree(
            Bucket::Sources,
            &key("src"),
            EntryMeta::any(),
            |_| -> Result<(), CacheError> { panic!("unpacked, not built") },
        )
        .unwrap();
    assert_eq!(origin, TreeOrigin::Unpacked);
    assert_eq!(std::fs::read(sources.join("file")).unwrap(), b"src");
}

#[test]
fn a_corrupt_packed_tree_is_dropped_and_its_tree_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(dir.path()).unwrap();
    let path = tree(&cache, Bucket::Sysroots, "sysroot", EntryMeta::any());
    let blob = cache.pack_tree(Bucket::Sysroots, &key("sysroot")).unwrap();
    flip_a_byte(&cache.blob_path(&blob.digest));
    let report = cache.verify().unwrap();
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    assert_eq!(
        report.problems[0].subject,
        format!("blob {}", blob.digest.oci())
    );
    assert!(report.problems[1].problem.contains("missing or corrupt"));
    assert!(path.join("file").is_file());
    assert!(cache.verify().unwrap().problems.is_empty());
    // Packed anew on demand.
    assert_eq!(
        cache.pack_tree(Bucket::Sysroots, &key("sysroot")).unwrap(),
        blob
    );
}
