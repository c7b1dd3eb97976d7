//! xbuild builds container images for any Linux CPU architecture from any
//! host, without a VM, a Docker daemon or emulation during the build.
//!
//! A tour of the crate, in pipeline order:
//!
//! - [`platform`]: the platforms xbuild knows (`targets/*.toml`, embedded at
//!   build time), name parsing (`arm64`, `linux/arm64`, triples) and the
//!   (build, target) pair.
//! - [`manifest`]: the `xbuild.toml` schema, validated with file, line and
//!   column in every error.
//! - [`debian`]: everything Debian: control files, dpkg version ordering,
//!   relation fields, signed `InRelease` verification, package indices, the
//!   dependency resolver and `.deb` reading.
//! - [`cache`]: the content-addressed local store (blobs by sha256, small
//!   entry records by key), atomic writes, locks.
//! - [`http`]: downloads with retries, conditional requests and hashing while
//!   streaming.
//! - [`image`]: layers streamed from `.deb` data, OCI config, manifest,
//!   index, image layout and docker-archive.
//! - [`plan`]: the plan of a build, made once before any work: a
//!   serialisable DAG of keyed nodes, each with its provider, cost,
//!   platforms and source (local, remote, upstream, build); keys; explain;
//!   `--require-hits`.
//! - [`pipeline`]: resolve → plan → realize → assemble → output; the
//!   package sources of a build as a verified list
//!   ([`pipeline::package_sources`]: the host's apt sources or the
//!   manifest's, security overlays, `NotAutomatic` suites only when asked).
//! - [`report`]: the plan as `plan` shows it, and what a build hit,
//!   downloaded and built, bytes per source, timings and savings.
//! - [`progress`]: the `Reporter` trait the library reports progress through.
//! - [`slim`]: `[image] slim`: the image's command and probes traced under
//!   qemu-user, the image cut down to what they used, and checked again.

// Errors carry the URL, path, package and digests they concern; they are
// built only on the failure path, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod build;
pub mod cache;
pub mod calendar;
pub mod configure;
pub mod debian;
pub mod error;
pub use xbuild_cache::hash;
pub mod http;
pub mod image;
pub mod manifest;
pub mod parallel;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod push;
pub mod report;
pub mod run;
pub mod shared;
pub mod slim;
pub mod toolchain;

pub use error::Error;
