//! What a trusted key signed but cannot be used: a toolchain tree whose
//! packed archive holds a path that escapes the tree. The cache drops it
//! and builds the tree instead, and the remote that sent it is named in a
//! warning with the signer, so a team learns that its key signed it.

use super::{Kind, Server, machine, remotes};
use std::sync::{Arc, Mutex};
use xbuild_cache::backend::BlobRef;
use xbuild_cache::hash::Sha256Digest;
use xbuild_cache::remote::{RemoteReader, RemoteWarning, UploadEntry};
use xbuild_cache::sign::SecretKey;
use xbuild_cache::{Bucket, Cache, CacheError, EntryMeta, PackedTree, TreeOrigin, TreeRecord};

/// A packed tree (zstd over tar) whose one file is `../escape`, and the
/// digest of its tar stream.
fn escaping_archive() -> (Vec<u8>, Sha256Digest) {
    let mut tar = Vec::new();
    {
        let mut header = tar::Header::new_gnu();
        // Written raw: the tar crate refuses to set a path with `..`.
        let name = b"../escape";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(5);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        let mut builder = tar::Builder::new(&mut tar);
        builder.append(&header, &b"owned"[..]).unwrap();
        builder.finish().unwrap();
    }
    let tar_digest = Sha256Digest::of(&tar);
    (zstd::encode_all(&tar[..], 3).unwrap(), tar_digest)
}

#[test]
fn an_unsafe_tree_signed_by_a_trusted_key_is_dropped_with_a_warning_naming_the_signer() {
    let server = Server::start(Kind::File);
    let signer = SecretKey::generate("team-tree-signer").unwrap();
    let a = machine();
    let (packed, tar_digest) = escaping_archive();
    let blob = BlobRef::new(
        a.cache.put_blob_bytes(&packed).unwrap(),
        packed.len() as u64,
    );
    let key = Sha256Digest::of(b"a toolchain whose archive escapes");
    let record = TreeRecord {
        bytes: 5,
        entries: 1,
        packed: Some(PackedTree { blob, tar_digest }),
    };
    a.cache
        .put_entry(
            Bucket::Toolchains,
            &key,
            &record,
            EntryMeta::any().with_blob(blob),
        )
        .unwrap();
    let entry = UploadEntry::from_local(&a.cache, Bucket::Toolchains, &key)
        .unwrap()
        .unwrap();
    let report = remotes(&server, &signer).upload(&a.cache, &[entry], &signer);
    assert!(!report.has_failures(), "{report:#?}");

    let warned = Arc::new(Mutex::new(Vec::new()));
    let sink = warned.clone();
    let reader = RemoteReader::new(
        remotes(&server, &signer),
        Box::new(move |warning: &RemoteWarning| sink.lock().unwrap().push(warning.to_string())),
    );
    let dir = tempfile::tempdir().unwrap();
    let b = Cache::open(&dir.path().join("cache"))
        .unwrap()
        .with_fallback(Arc::new(reader));
    let (path, origin) = b
        .get_or_build_tree(Bucket::Toolchains, &key, EntryMeta::any(), |aside| {
            std::fs::write(aside.join("built-here"), b"ok").map_err(|source| CacheError::Io {
                path: aside.to_owned(),
                source,
            })
        })
        .unwrap();
    assert_eq!(origin, TreeOrigin::Built);
    assert!(path.join("built-here").is_file());
    assert!(
        !path.parent().unwrap().join("escape").exists(),
        "the archive wrote outside the tree"
    );
    assert!(!b.has_blob(&blob.digest), "the unsafe blob was kept");

    let warned = warned.lock().unwrap();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    let warning = &warned[0];
    for says in [
        server.url().as_str(),
        &format!("toolchains-v1/{}", key.hex()),
        "signed by team-tree-signer",
        "\"../escape\"",
    ] {
        assert!(warning.contains(says), "`{says}` missing: {warning}");
    }
    eprintln!("{warning}");
}
