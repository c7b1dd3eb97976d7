//! Transfer speed of one 100 MB blob to and from each kind of remote
//! (`cargo test -p xbuild-cache --test remote -- --ignored --nocapture`).

use crate::{Kind, Server, machine};
use std::io::Write as _;
use std::time::Instant;
use xbuild_cache::backend::{BlobRef, RemoteConfig};
use xbuild_cache::hash::HashingWriter;
use xbuild_cache::remote::{Remotes, UploadEntry};
use xbuild_cache::sign::SecretKey;

const SIZE: usize = 100 * 1024 * 1024;

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn speed_of_a_100_mb_blob() {
    println!("\n| remote | upload MB/s | download MB/s |\n|---|---|---|");
    for kind in [Kind::File, Kind::Http, Kind::Oci] {
        let server = Server::start(kind);
        let a = machine();
        // Incompressible bytes, written straight into A's cache.
        let mut temp = a.cache.temp_file().unwrap();
        let mut writer = HashingWriter::new(std::io::BufWriter::new(temp.as_file_mut()));
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut chunk = vec![0u8; 1024 * 1024];
        for _ in 0..SIZE / chunk.len() {
            for bytes in chunk.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.copy_from_slice(&state.to_le_bytes());
            }
            writer.write_all(&chunk).unwrap();
        }
        let (buffered, digest, size) = writer.finish();
        drop(buffered);
        a.cache.commit_blob(temp, &digest).unwrap();
        let key = xbuild_cache::hash::Sha256Digest::of(b"speed");
        let meta = xbuild_cache::EntryMeta::any().with_blob(BlobRef::new(digest, size));
        a.cache
            .put_entry(
                xbuild_cache::Bucket::Layer,
                &key,
                &serde_json::json!({"speed": true}),
                meta,
            )
            .unwrap();
        let entry = UploadEntry::from_local(&a.cache, xbuild_cache::Bucket::Layer, &key)
            .unwrap()
            .unwrap();
        let signer = SecretKey::generate("bench").unwrap();
        let remotes = Remotes::open(
            &[server.url()],
            &RemoteConfig::default(),
            vec![signer.public()],
        )
        .unwrap();
        let start = Instant::now();
        let report = remotes.upload(&a.cache, std::slice::from_ref(&entry), &signer);
        let up = start.elapsed().as_secs_f64();
        assert!(!report.has_failures(), "{report:#?}");
        let b = machine();
        let start = Instant::now();
        let hit = remotes
            .fetch_entry(&b.cache, xbuild_cache::Bucket::Layer, &key)
            .hit
            .unwrap();
        let down = start.elapsed().as_secs_f64();
        assert_eq!(hit.blobs_fetched, 1);
        let megabytes = size as f64 / 1e6;
        println!(
            "| {kind:?} | {:.0} | {:.0} |",
            megabytes / up,
            megabytes / down
        );
    }
}
