//! Every place in the cache that holds something, by name: the entry
//! buckets (small records under `entries-v2/`), the tree buckets
//! (directories, each with an entry of its own), and the scratch
//! directories (kept between builds, never shared).
//!
//! Each name carries a version. Change a bucket's record format, or the
//! layout of its trees, and the version goes up: the old name is then
//! simply never read again (and `xbuild cache gc` removes it). Names whose
//! format did not change when entries moved under `entries-v2/` kept their
//! numbers.
//!
//! ```text
//! entries-v2/
//!   inrelease-v1/<key>.json            a suite's InRelease: URL, validators, blob, when checked
//!   inrelease-date-v1/<key>.json       the newest InRelease `Date` this cache verified for a suite
//!                                      (local only: what a replayed older InRelease is held against)
//!   resolution-v1/<key>.json           a target's package closure (key: request + index digests)
//!   layer-v1/<key>.json                a package layer: blob digest, diff_id, sizes
//!   build-v1/<key>.json                a cargo or C build: its layer, inputs, build time
//!   build-history-v1/<key>.json        the latest build keys of one build name (for explain)
//!   source-lookup-v1/<key>.json        a source package's entry in a Sources index
//!   toolchain-build-v1/<key>.json      how long a source-built toolchain took
//!   toolchain-build-time-v1/<key>.json the latest such time (estimates)
//!   cargo-build-script-env-v1/<key>.json  variables a build's build scripts read
//!   outputs-v1/<key>.json              what the cache last wrote at an output path
//!   toolchains-v1/<key>.json           the entry of each tree below (size, packed blob)
//!   sysroots-v3/<key>.json
//!   compilers-v1/<key>.json
//!   sources-v1/<key>.json
//!   rootfs-v1/<key>.json
//! toolchains-v1/<key>/                 compiler programs (Debian's, unpacked) or a toolchain built from source
//! sysroots-v3/<key>/                   a target's libc6-dev and -dev packages, unpacked (merged /usr)
//! compilers-v1/<key>/                  wrappers joining programs and a sysroot: two relative
//!                                      symlinks, ../../toolchains-v1/<key> and ../../sysroots-v3/<key>
//! sources-v1/<key>/<tree>/             the unpacked sources of a [[build]] or a source toolchain
//! rootfs-v1/<key>/root/                an image's layers applied, for `xbuild run` (key: its manifest
//!                                      digest and who owns the files); no set-id bits, no device nodes
//! rootfs-v1/<key>/set-id.json          the set-id modes taken off, given back in each run's overlay
//! cargo-target-v1/<key>/               cargo's target directory per project (scratch)
//! logs-v1/                             toolchain build logs; builds-v1.jsonl, the last builds' summaries
//! ```

use std::fmt;

/// What a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKind {
    /// Records only.
    Entries,
    /// A directory per key, each with a record (its size and packed blob).
    Tree,
    /// A directory of scratch files: no records, never shared, removable
    /// at any time (the next build is slower, not wrong).
    Scratch,
}

/// A bucket of the cache. See the module doc for the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// A suite's signed InRelease (the record names its blob).
    InRelease,
    /// The newest `Date` of a suite's InRelease this cache verified: never
    /// shared, so no remote can lower it.
    InReleaseDate,
    /// A target's resolved package closure.
    Resolution,
    /// A layer made of Debian packages (or the merged-/usr layer).
    Layer,
    /// A build of the user's code: its layer, inputs and time.
    Build,
    /// The latest build keys of one build name, for `plan --explain`.
    BuildHistory,
    /// A Debian source package found in a `Sources` index.
    SourceLookup,
    /// The time a toolchain built from source took.
    ToolchainBuild,
    /// The latest source toolchain build time, for estimates.
    ToolchainBuildTime,
    /// The variables a build's build scripts read.
    CargoBuildScriptEnv,
    /// What the cache wrote at an output path (docker-archive fingerprints).
    Outputs,
    /// Compiler programs, or a toolchain built from source.
    Toolchains,
    /// A target's `-dev` packages, unpacked.
    Sysroots,
    /// Programs and a sysroot joined by wrapper scripts.
    Compilers,
    /// Unpacked source trees.
    Sources,
    /// cargo's target directories.
    CargoTarget,
    /// Logs of toolchain builds and the summaries of recent builds.
    Logs,
    /// The repositories of a registry this cache pushed a blob to: where a
    /// push to another repository mounts it from.
    RegistryBlobs,
    /// An image's layers applied into a root filesystem, by manifest
    /// digest: what `xbuild run` mounts read-only under each run.
    RootFs,
}

impl Bucket {
    /// Every bucket, in the order of the layout.
    pub const ALL: [Bucket; 19] = [
        Bucket::InRelease,
        Bucket::InReleaseDate,
        Bucket::Resolution,
        Bucket::Layer,
        Bucket::Build,
        Bucket::BuildHistory,
        Bucket::SourceLookup,
        Bucket::ToolchainBuild,
        Bucket::ToolchainBuildTime,
        Bucket::CargoBuildScriptEnv,
        Bucket::Outputs,
        Bucket::Toolchains,
        Bucket::Sysroots,
        Bucket::Compilers,
        Bucket::Sources,
        Bucket::CargoTarget,
        Bucket::Logs,
        Bucket::RegistryBlobs,
        Bucket::RootFs,
    ];

    /// The versioned name on disk: the directory under `entries-v2/`, and
    /// for trees and scratch also the directory at the cache root.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::InRelease => "inrelease-v1",
            Bucket::InReleaseDate => "inrelease-date-v1",
            Bucket::Resolution => "resolution-v1",
            Bucket::Layer => "layer-v1",
            Bucket::Build => "build-v1",
            Bucket::BuildHistory => "build-history-v1",
            Bucket::SourceLookup => "source-lookup-v1",
            Bucket::ToolchainBuild => "toolchain-build-v1",
            Bucket::ToolchainBuildTime => "toolchain-build-time-v1",
            Bucket::CargoBuildScriptEnv => "cargo-build-script-env-v1",
            Bucket::Outputs => "outputs-v1",
            Bucket::Toolchains => "toolchains-v1",
            Bucket::Sysroots => "sysroots-v3",
            Bucket::Compilers => "compilers-v1",
            Bucket::Sources => "sources-v1",
            Bucket::CargoTarget => "cargo-target-v1",
            Bucket::Logs => "logs-v1",
            Bucket::RegistryBlobs => "registry-blobs-v1",
            Bucket::RootFs => "rootfs-v1",
        }
    }

    pub fn kind(self) -> BucketKind {
        match self {
            Bucket::Toolchains
            | Bucket::Sysroots
            | Bucket::Compilers
            | Bucket::Sources
            | Bucket::RootFs => BucketKind::Tree,
            Bucket::CargoTarget | Bucket::Logs => BucketKind::Scratch,
            _ => BucketKind::Entries,
        }
    }

    /// Whether the bucket has records (entry and tree buckets do).
    pub fn has_entries(self) -> bool {
        self.kind() != BucketKind::Scratch
    }

    /// The bucket named `name` on disk.
    pub fn from_name(name: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|bucket| bucket.name() == name)
    }

    /// The tree buckets.
    /// Whether entries of this bucket travel between machines (through a
    /// remote cache): what a build on another machine can reuse. Build
    /// history, time estimates, output fingerprints and scratch stay local.
    pub fn is_shared(self) -> bool {
        matches!(
            self,
            Bucket::InRelease
                | Bucket::Resolution
                | Bucket::Layer
                | Bucket::Build
                | Bucket::SourceLookup
                | Bucket::ToolchainBuild
                | Bucket::CargoBuildScriptEnv
                | Bucket::Toolchains
                | Bucket::Sysroots
                | Bucket::Compilers
                | Bucket::Sources
        )
    }

    pub fn trees() -> impl Iterator<Item = Bucket> {
        Bucket::ALL
            .into_iter()
            .filter(|bucket| bucket.kind() == BucketKind::Tree)
    }

    /// The buckets with records.
    pub fn with_entries() -> impl Iterator<Item = Bucket> {
        Bucket::ALL
            .into_iter()
            .filter(|bucket| bucket.has_entries())
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl serde::Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Bucket {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Bucket::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown cache bucket {name:?}")))
    }
}

/// Directories earlier versions of xbuild wrote that nothing reads any
/// more: `xbuild cache gc` removes them first.
pub const LEGACY_DIRECTORIES: [&str; 3] = ["entries-v1", "sysroots-v2", "logs"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_versioned_and_round_trip() {
        let mut names: Vec<&str> = Bucket::ALL.iter().map(|bucket| bucket.name()).collect();
        for name in &names {
            assert!(
                name.rsplit_once("-v")
                    .is_some_and(|(_, version)| version.parse::<u32>().is_ok()),
                "{name} has no version"
            );
            assert_eq!(Bucket::from_name(name).unwrap().name(), *name);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Bucket::ALL.len());
        for legacy in LEGACY_DIRECTORIES {
            assert!(Bucket::from_name(legacy).is_none());
        }
    }
}
