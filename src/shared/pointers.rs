//! The signed pointers that let a remote answer "what is the nearest entry
//! of this build": WebDAV servers and registries cannot list, so each
//! upload of a build entry also updates a small pointer per project (the
//! image name), target and build name, listing that build's latest entry
//! keys. `plan --explain` and `--require-hits` read it and compare a miss
//! with those entries' recorded inputs, as they do with the local cache's.
//!
//! Two machines updating one pointer at once: the last writer wins and the
//! other's key drops out of the list (its entry stays; only "nearest" may
//! be less near). A pointer signed by a key this machine does not trust is
//! ignored, with a warning.

use crate::cache::remote::RemoteReader;
use crate::cache::sign::SecretKey;
use crate::cache::{Bucket, hash::Sha256Digest};
use crate::pipeline::BuildRecord;
use crate::plan::KeyBuilder;
use crate::plan::explain::Inputs;
use serde::{Deserialize, Serialize};

/// How many entry keys a pointer keeps (the latest last).
pub const POINTER_LENGTH: usize = 16;

/// What a pointer's body holds.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct PointerBody {
    /// Entry keys of the `build` bucket, oldest first.
    builds: Vec<Sha256Digest>,
}

/// The pointer of the build `build_name` (which names its target, as in
/// `cargo . (aarch64-linux)`) of the project whose image is `image`.
pub fn pointer_name(image: &str, build_name: &str) -> String {
    let key = KeyBuilder::new("build-pointer")
        .text("image", image)
        .text("build", build_name)
        .finish();
    format!("build-{}", key.hex())
}

/// The entry keys the pointer lists, oldest first (none if no remote has
/// a trusted one, or it does not parse).
fn read(reader: &RemoteReader, name: &str) -> Vec<Sha256Digest> {
    reader
        .pointer(name)
        .and_then(|body| serde_json::from_slice::<PointerBody>(&body).ok())
        .map(|body| body.builds)
        .unwrap_or_default()
}

/// Makes `key` the latest entry the pointer `name` lists, unless it is
/// already (so a second upload of the same build writes nothing).
pub fn advance(reader: &RemoteReader, signer: &SecretKey, name: &str, key: &Sha256Digest) {
    let mut builds = read(reader, name);
    if builds.last() == Some(key) {
        return;
    }
    builds.retain(|listed| listed != key);
    builds.push(*key);
    let excess = builds.len().saturating_sub(POINTER_LENGTH);
    builds.drain(..excess);
    let body = serde_json::to_vec(&PointerBody { builds }).expect("pointers serialise");
    reader.put_pointer(name, &body, signer);
}

/// The recorded inputs and build times of the entries the pointer lists
/// that a remote holds signed by a trusted key, oldest first (records
/// only: no blob is fetched).
pub fn candidates(reader: &RemoteReader, name: &str, except: &Sha256Digest) -> Vec<(Inputs, f64)> {
    let keys: Vec<Sha256Digest> = read(reader, name)
        .into_iter()
        .filter(|key| key != except)
        .collect();
    crate::cache::backend::parallel_map(8, &keys, |key| {
        reader.peek::<BuildRecord>(Bucket::Build, key)
    })
    .into_iter()
    .flatten()
    .map(|entry| (entry.record.inputs, entry.record.seconds))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_by_project_and_build_and_are_valid_pointer_names() {
        let one = pointer_name("cowsay", "cargo . (aarch64-linux)");
        assert_ne!(one, pointer_name("cowsay", "cargo . (armv7-linux)"));
        assert_ne!(one, pointer_name("other", "cargo . (aarch64-linux)"));
        assert_eq!(one, pointer_name("cowsay", "cargo . (aarch64-linux)"));
        crate::cache::backend::check_pointer(&one).unwrap();
    }
}
