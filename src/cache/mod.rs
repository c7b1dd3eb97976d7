//! The cache, from the xbuild side: the store itself is the
//! `xbuild-cache` crate (re-exported here); fetching upstream blobs into it
//! lives here, since it needs the HTTP client.

mod fetch;
pub use fetch::{BlobOrigin, FetchError, FetchVerified};
pub use xbuild_cache::*;
