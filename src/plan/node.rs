//! One node of a plan: what it makes (its kind and detail), the key that
//! names its output, the nodes it is made from, who provides it, what it
//! costs, the platforms it concerns, and where the plan will get it from.

use super::NodeKind;
use super::explain::{Difference, Inputs};
use crate::hash::Sha256Digest;
use crate::pipeline::{PlannedBuild, PlannedSource, ResolvedPackage, SysrootPlan, ToolchainPlan};
use crate::toolchain::rust::RustToolchain;
use serde::{Deserialize, Serialize};

/// A node's position in [`super::Plan::nodes`]. A node's inputs always
/// come before it, so the order of the nodes is a topological order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub usize);

/// What names a node's output wherever it is cached: its kind and key. A
/// remote is asked about nodes by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeRef {
    pub kind: NodeKind,
    pub key: Sha256Digest,
}

/// Who makes or serves a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// The signed Debian archive: indices and `.deb` files.
    DebianArchive,
    /// A Debian source package from the archive's signed `Sources` index.
    DebianSource,
    /// A tarball named by its sha256.
    Url,
    /// Debian's cross compiler packages for the pair.
    DebianCross,
    /// Debian's native compiler packages (build machine and target share
    /// an architecture).
    DebianNative,
    /// A cross GCC built from Debian's sources (no binary exists for the
    /// pair): the expensive node.
    #[serde(rename = "source")]
    GccFromSource,
    /// A Rust target's standard library, added by rustup.
    Rustup,
    /// A target sysroot unpacked from the target's `-dev` packages.
    DebianSysroot,
    /// Compiler programs and a sysroot joined by wrapper scripts.
    Compose,
    Cargo,
    Autotools,
    Make,
    Cmake,
    /// A layer streamed from `.deb` files.
    DebLayer,
    /// The merged-/usr symlinks layer.
    MergedUsr,
    /// A target's configure layer: maintainer scripts' effects, made
    /// natively from its `.deb`s and the manifest.
    Configure,
    /// An OCI image config and manifest written from layers.
    Oci,
}

impl Provider {
    /// The name JSON uses (`debian-cross`, `source`, `deb-layer`…).
    pub fn label(self) -> &'static str {
        match self {
            Provider::DebianArchive => "debian-archive",
            Provider::DebianSource => "debian-source",
            Provider::Url => "url",
            Provider::DebianCross => "debian-cross",
            Provider::DebianNative => "debian-native",
            Provider::GccFromSource => "source",
            Provider::Rustup => "rustup",
            Provider::DebianSysroot => "debian-sysroot",
            Provider::Compose => "compose",
            Provider::Cargo => "cargo",
            Provider::Autotools => "autotools",
            Provider::Make => "make",
            Provider::Cmake => "cmake",
            Provider::DebLayer => "deb-layer",
            Provider::MergedUsr => "merged-usr",
            Provider::Configure => "configure",
            Provider::Oci => "oci",
        }
    }
}

/// Where the plan gets a node from: the first of these that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeSource {
    /// The local cache has it (or, for a node derived from others — a
    /// composed compiler, an image's config and manifest — every input is
    /// a hit, so making it is not a build).
    Local,
    /// A remote cache has it.
    Remote,
    /// Downloaded from upstream (the Debian archive, a tarball's URL,
    /// rustup).
    Upstream,
    /// Made here from its inputs.
    Build,
}

impl NodeSource {
    /// Whether it comes from a cache (local or remote).
    pub fn is_hit(self) -> bool {
        matches!(self, NodeSource::Local | NodeSource::Remote)
    }
}

/// What a node costs when it is not a hit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Seconds, from this cache's records where known: for a miss, how
    /// long the nearest earlier build took (or an estimate); for a hit,
    /// how long building it took (what the hit saves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Bytes the plan downloads for it (0 unless it is needed and its
    /// source is `upstream`). For an index fetched while planning, the
    /// bytes it took.
    #[serde(default)]
    pub download_bytes: u64,
}

/// Which cache a nearest entry was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheLocation {
    Local,
    Remote,
}

/// For a miss: the nearest cached entry of the same name, and how the
/// node's named inputs differ from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nearest {
    pub cache: CacheLocation,
    /// In key order; never empty (an entry with no difference is a hit).
    pub differences: Vec<Difference>,
    /// How long that entry took to build.
    pub seconds: f64,
}

/// What a `.deb` or a source package is for (its package names the source
/// it comes from: [`crate::pipeline::PackageOrigin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// The image: target packages, sysroots, sources.
    Image,
    /// The build machine: compiler programs.
    Toolchain,
}

/// What a layer node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerContents {
    /// The `.deb` files of its inputs, in input order.
    Packages,
    /// The merged-/usr symlinks.
    MergedUsr,
    /// Accounts, os-release, the CA bundle…: see [`crate::configure`].
    /// Its inputs are the target's `.deb`s, in image order.
    Configure,
}

/// The kind-specific part of a node: what realizing it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    /// An index consulted while planning (already fetched).
    Index,
    Deb {
        package: ResolvedPackage,
        purpose: Purpose,
    },
    /// A build's sources (a Debian source package or a tarball).
    Source {
        source: PlannedSource,
        purpose: Purpose,
    },
    /// Compiler programs (Debian's, or a GCC built from source).
    Toolchain {
        toolchain: Box<ToolchainPlan>,
    },
    /// A Rust target's standard library.
    RustTarget {
        rust: RustToolchain,
        triple: String,
    },
    Sysroot {
        sysroot: SysrootPlan,
    },
    /// Programs and sysroot joined: its inputs are the two.
    Compiler,
    Build {
        build: Box<PlannedBuild>,
    },
    Layer {
        contents: LayerContents,
    },
    /// One target's image: its inputs are its layers (package layers,
    /// then build outputs), in image order.
    Image {
        target: String,
        reference: String,
    },
}

/// One node of a [`super::Plan`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub kind: NodeKind,
    /// For people: `hello_2.10-3_arm64.deb`, `cargo . (aarch64-linux)`.
    pub name: String,
    /// The target it is for, when it is for exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub key: Sha256Digest,
    pub provider: Provider,
    /// The platform its programs run on (`None`: architecture-independent
    /// data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<String>,
    /// For a compiler or a standard library: the platform it emits code for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emits_for: Option<String>,
    /// The nodes it is made from (each before it in the plan).
    pub inputs: Vec<NodeId>,
    /// The named inputs its key is computed from, where they are recorded
    /// (builds), for `plan --explain`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_inputs: Inputs,
    pub cost: Cost,
    pub source: NodeSource,
    /// Whether realizing the plan touches it: a node every user of which
    /// is a hit is not needed (a cached layer needs none of its `.deb`s).
    pub needed: bool,
    /// For a miss with named inputs: the nearest cached entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest: Option<Nearest>,
    pub detail: Detail,
}

impl Node {
    pub fn reference(&self) -> NodeRef {
        NodeRef {
            kind: self.kind,
            key: self.key,
        }
    }

    /// `layer hello for aarch64-linux`, `build cargo . (aarch64-linux)`:
    /// kind, name and target, as messages name a node.
    pub fn describe(&self) -> String {
        describe(self.kind, &self.name, self.target.as_deref())
    }
}

/// See [`Node::describe`]: the kind unless the name starts with it, the
/// target unless the name says it.
pub(super) fn describe(kind: NodeKind, name: &str, target: Option<&str>) -> String {
    let mut text = if name.starts_with(&format!("{} ", kind.label())) {
        name.to_owned()
    } else {
        format!("{} {name}", kind.label())
    };
    if let Some(target) = target
        && !name.ends_with(&format!("({target})"))
        && !name.contains(&format!("→ {target}"))
    {
        text.push_str(&format!(" for {target}"));
    }
    text
}
