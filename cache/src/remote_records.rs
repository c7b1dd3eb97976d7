//! Reading what remotes hold without fetching blobs: an entry's record
//! (verified, for `plan --explain`), and the signed pointers that name a
//! build's latest entries (WebDAV servers and registries cannot list, so a
//! pointer per project, target and build name is how "the nearest entry"
//! is found remotely).

use crate::Bucket;
use crate::hash::Sha256Digest;
use crate::remote::{Problem, RemoteWarning, Remotes};
use crate::sign::{self, SecretKey, VerifiedPointer};
use std::sync::atomic::Ordering;

impl Remotes {
    /// The record of the entry `key` of `bucket` as the first remote that
    /// has it signed by a trusted key serves it (the entry's stored bytes,
    /// for [`crate::entry::decode_entry`]), verified; no blob is fetched
    /// and nothing enters the local cache. What `plan --explain` compares
    /// a miss with.
    pub fn peek_record(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> (Option<Vec<u8>>, Vec<RemoteWarning>) {
        let mut warnings = Vec::new();
        for remote in &self.remotes {
            if !remote.may_ask(bucket, key) {
                continue;
            }
            let problem = match remote.backend.get_entry(bucket.name(), key) {
                Ok(None) => continue,
                Ok(Some(envelope)) => {
                    match sign::verify(&envelope, bucket.name(), key, &self.trusted) {
                        Ok(entry) => return (Some(entry.record), warnings),
                        Err(error) => Problem::Refused(error),
                    }
                }
                Err(error) => remote.problem(error),
            };
            remote.note_refused(bucket, key, &problem);
            warnings.push(RemoteWarning {
                remote: remote.url().to_owned(),
                subject: format!("{}/{}", bucket.name(), key.hex()),
                problem,
            });
        }
        (None, warnings)
    }

    /// Writes the pointer `name` (signed by `signer`) to every remote;
    /// the warnings of those that failed. Nothing when read-only.
    pub fn put_pointer(&self, name: &str, body: &[u8], signer: &SecretKey) -> Vec<RemoteWarning> {
        if self.read_only {
            return Vec::new();
        }
        let document = match sign::seal_pointer(signer, name, body) {
            Ok(document) => document,
            Err(error) => {
                return vec![RemoteWarning {
                    remote: "(all)".into(),
                    subject: format!("pointer {name}"),
                    problem: Problem::Failed(error),
                }];
            }
        };
        let mut warnings = Vec::new();
        for remote in self
            .remotes
            .iter()
            .filter(|remote| !remote.down.load(Ordering::Relaxed))
        {
            if let Err(error) = remote.backend.put_pointer(name, &document) {
                warnings.push(RemoteWarning {
                    remote: remote.url().to_owned(),
                    subject: format!("pointer {name}"),
                    problem: remote.problem(error),
                });
            }
        }
        warnings
    }

    /// The newest trusted pointer `name` any remote holds.
    pub fn get_pointer(&self, name: &str) -> (Option<VerifiedPointer>, Vec<RemoteWarning>) {
        let mut newest: Option<VerifiedPointer> = None;
        let mut warnings = Vec::new();
        for remote in self
            .remotes
            .iter()
            .filter(|remote| !remote.down.load(Ordering::Relaxed))
        {
            let problem = match remote.backend.get_pointer(name) {
                Ok(None) => continue,
                Ok(Some(document)) => match sign::open_pointer(&document, name, &self.trusted) {
                    Ok(pointer) => {
                        if newest
                            .as_ref()
                            .is_none_or(|newest| pointer.created > newest.created)
                        {
                            newest = Some(pointer);
                        }
                        continue;
                    }
                    Err(error) => Problem::Refused(error),
                },
                Err(error) => remote.problem(error),
            };
            warnings.push(RemoteWarning {
                remote: remote.url().to_owned(),
                subject: format!("pointer {name}"),
                problem,
            });
        }
        (newest, warnings)
    }
}
