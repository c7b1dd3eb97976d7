//! The report of `xbuild plan`: the [`Plan`] itself (its nodes, with
//! their keys, inputs, providers, costs and sources), and two views of it
//! for people and older scripts — each target's packages with their cache
//! status, and each build with its toolchain and why it misses. The text
//! and the JSON are rendered from the same plan, so they agree.

use super::human_bytes;
use crate::pipeline::{ProviderChoice, ResolvedPackage, TargetResolution};
use crate::plan::{Detail, NodeKind, NodeSource, Plan, Provider};
use serde::Serialize;
use std::fmt::Write as _;

/// What `xbuild plan` shows for one package.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Path below the repository root, and the digest it must have.
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub cached: bool,
    pub reason: String,
    /// The source it comes from (its position in the plan's `sources`),
    /// suite and component.
    pub origin: crate::pipeline::PackageOrigin,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedTarget {
    pub target: String,
    pub pair: String,
    pub packages: Vec<PlannedPackage>,
    pub skipped: Vec<String>,
    /// Providers chosen for pure-virtual relations.
    pub choices: Vec<ProviderChoice>,
    /// Sources not read for this target, and why.
    pub notes: Vec<String>,
    pub download_bytes: u64,
    pub total_bytes: u64,
}

/// What `xbuild plan` shows for one `[[build]]` of one target.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBuildReport {
    pub name: String,
    pub target: String,
    pub key: String,
    pub cached: bool,
    /// The toolchain it needs, whether the cache has it, and how much of it
    /// would be downloaded.
    pub toolchain: String,
    pub toolchain_key: String,
    pub toolchain_cached: bool,
    pub toolchain_download_bytes: u64,
    /// `debian-cross`, `debian-native` (Debian's prebuilt compiler
    /// packages), `source` (built from source: the expensive node) or
    /// `none`.
    pub toolchain_provider: String,
    /// For a toolchain to build from source: its estimated duration here.
    pub toolchain_build_seconds: Option<f64>,
    /// Its packages (for the build machine's architecture).
    pub toolchain_packages: Vec<ToolchainPackage>,
    /// The key of the target sysroot it links against (glibc targets).
    pub sysroot_key: Option<String>,
    /// The inputs its key covers.
    pub inputs: Vec<(String, String)>,
    /// For a miss: what differs from the nearest cached build of the same
    /// name (empty when there is none).
    pub differences: Vec<String>,
    /// For a miss: how long the nearest cached build took (its estimated
    /// cost); for a hit, the time it saves.
    pub estimated_seconds: Option<f64>,
}

/// A package of a toolchain, as `plan --json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolchainPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Path below the repository root.
    pub filename: String,
    pub sha256: String,
}

impl ToolchainPackage {
    pub fn of(package: &ResolvedPackage) -> ToolchainPackage {
        ToolchainPackage {
            name: package.name.clone(),
            version: package.version.clone(),
            architecture: package.architecture.clone(),
            filename: package.filename.clone(),
            sha256: package.sha256.oci(),
        }
    }
}

/// The report of `xbuild plan`: the plan (flattened: `format`,
/// `build_platform`, `sources`, `notes`, `images`, `nodes`) and its views.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    #[serde(flatten)]
    pub plan: Plan,
    pub targets: Vec<PlannedTarget>,
    pub builds: Vec<PlannedBuildReport>,
}

impl PlanReport {
    /// The report of `plan`, for the targets it was made from (in its
    /// order).
    pub fn new(plan: Plan, targets: &[TargetResolution]) -> PlanReport {
        let cached = |package: &ResolvedPackage| {
            plan.find(NodeKind::Deb, &package.sha256)
                .is_some_and(|node| node.source == NodeSource::Local)
        };
        let targets = plan
            .images
            .iter()
            .zip(targets)
            .map(|(image, target)| {
                let packages: Vec<PlannedPackage> = target
                    .packages
                    .iter()
                    .map(|package| PlannedPackage {
                        name: package.name.clone(),
                        version: package.version.clone(),
                        architecture: package.architecture.clone(),
                        filename: package.filename.clone(),
                        sha256: package.sha256.oci(),
                        size: package.size,
                        cached: cached(package),
                        reason: package.reason.clone(),
                        origin: package.origin.clone(),
                    })
                    .collect();
                PlannedTarget {
                    target: image.target.clone(),
                    pair: image.pair.clone(),
                    download_bytes: packages.iter().filter(|p| !p.cached).map(|p| p.size).sum(),
                    total_bytes: packages.iter().map(|p| p.size).sum(),
                    packages,
                    skipped: target.skipped.clone(),
                    choices: target.choices.clone(),
                    notes: target.notes.clone(),
                }
            })
            .collect();
        let builds = plan
            .nodes
            .iter()
            .filter(|node| node.kind == NodeKind::Build)
            .filter_map(|node| build_view(&plan, node))
            .collect();
        PlanReport {
            plan,
            targets,
            builds,
        }
    }

    /// The text of `plan`; with `explain`, every build's key, inputs and
    /// the reason for a miss.
    pub fn render_text_with(&self, explain: bool) -> String {
        let mut text = self.render_text();
        for build in &self.builds {
            let status = if build.cached { "cached" } else { "build" };
            let cost = match (build.cached, build.estimated_seconds) {
                (true, Some(seconds)) => format!(", saves ~{seconds:.1}s"),
                (false, Some(seconds)) => format!(", ~{seconds:.1}s last time"),
                (false, None) => ", never built with this cache".to_owned(),
                (true, None) => String::new(),
            };
            let _ = writeln!(text, "{}: {status}{cost}", build.name);
            let toolchain = match (build.toolchain_cached, build.toolchain_build_seconds) {
                (true, _) => "cached".to_owned(),
                (false, _) if build.cached => "not needed (the build is a hit)".to_owned(),
                (false, Some(seconds)) => format!(
                    "BUILD FROM SOURCE, ~{:.0} min estimated, fetch {} first (expensive: needs --allow-toolchain-build; once per cache)",
                    (seconds / 60.0).ceil(),
                    human_bytes(build.toolchain_download_bytes)
                ),
                (false, None) => format!(
                    "fetch {} and assemble",
                    human_bytes(build.toolchain_download_bytes)
                ),
            };
            let _ = writeln!(text, "  toolchain {}: {toolchain}", build.toolchain);
            if explain {
                let _ = writeln!(text, "  key {}", build.key);
                let _ = writeln!(text, "  toolchain key {}", build.toolchain_key);
                for (name, value) in &build.inputs {
                    let _ = writeln!(text, "    {name} = {value}");
                }
                if !build.cached {
                    if build.differences.is_empty() {
                        let _ = writeln!(text, "  miss: no build of this name in the cache");
                    }
                    for difference in &build.differences {
                        let _ = writeln!(text, "  miss: {difference}");
                    }
                }
            }
        }
        let counts = self.plan.counts();
        let _ = writeln!(
            text,
            "plan: {} nodes needed: {} local, {} remote, {} upstream ({}), {} to build",
            counts.local + counts.remote + counts.upstream + counts.build,
            counts.local,
            counts.remote,
            counts.upstream,
            human_bytes(self.plan.download_bytes()),
            counts.build
        );
        if explain {
            for node in self.plan.needed() {
                if node.kind == NodeKind::Index || node.source.is_hit() {
                    continue;
                }
                let action = match node.source {
                    NodeSource::Upstream => "download",
                    _ => "build",
                };
                let _ = writeln!(text, "  {}: {action}", node.describe());
            }
        }
        text
    }

    pub fn render_text(&self) -> String {
        let mut text = String::new();
        for source in &self.plan.sources {
            let _ = writeln!(text, "source {}: {}", source.id, source.describe());
        }
        for note in &self.plan.notes {
            let _ = writeln!(text, "warning: {note}");
        }
        for target in &self.targets {
            let _ = writeln!(
                text,
                "{} ({}): {} packages, {} to download of {}",
                target.target,
                target.pair,
                target.packages.len(),
                human_bytes(target.download_bytes),
                human_bytes(target.total_bytes)
            );
            for package in &target.packages {
                let _ = writeln!(
                    text,
                    "  {:<28} {:<24} {:<22} {:>9}  {:<8}  {}",
                    package.name,
                    package.version,
                    package.origin.label(),
                    human_bytes(package.size),
                    if package.cached { "cached" } else { "download" },
                    package.reason
                );
            }
            for note in &target.notes {
                let _ = writeln!(text, "  note: {note}");
            }
            for skipped in &target.skipped {
                let _ = writeln!(text, "  skipped: {skipped}");
            }
            for choice in &target.choices {
                let _ = writeln!(text, "  {}", choice.describe());
            }
        }
        text
    }
}

/// The view of one build node (`None` for a node that is not a build).
fn build_view(plan: &Plan, node: &crate::plan::Node) -> Option<PlannedBuildReport> {
    let Detail::Build { build } = &node.detail else {
        return None;
    };
    let toolchain = &build.toolchain;
    let toolchain_node = plan.find(NodeKind::Toolchain, &toolchain.key);
    let sysroot_node = build
        .sysroot
        .as_ref()
        .and_then(|sysroot| plan.find(NodeKind::Sysroot, &sysroot.key));
    let toolchain_cached = toolchain_node.is_none_or(|node| node.source.is_hit());
    // What the toolchain's and sysroot's missing parts would download.
    let missing = |part: Option<&crate::plan::Node>| -> u64 {
        part.filter(|part| !part.source.is_hit())
            .map(|part| {
                plan.inputs(part)
                    .filter(|input| input.kind == NodeKind::Deb)
                    .map(|input| input.cost.download_bytes)
                    .sum()
            })
            .unwrap_or(0)
    };
    Some(PlannedBuildReport {
        name: node.name.clone(),
        target: build.target_platform.name.clone(),
        key: node.key.oci(),
        cached: node.source.is_hit(),
        toolchain: toolchain.name.clone(),
        toolchain_key: toolchain.key.oci(),
        toolchain_cached,
        toolchain_download_bytes: missing(toolchain_node) + missing(sysroot_node),
        toolchain_provider: toolchain_node
            .map_or("none", |node| node.provider.label())
            .to_owned(),
        toolchain_build_seconds: toolchain_node
            .filter(|node| node.provider == Provider::GccFromSource && !toolchain_cached)
            .and_then(|node| node.cost.seconds),
        toolchain_packages: toolchain
            .packages
            .iter()
            .map(ToolchainPackage::of)
            .collect(),
        sysroot_key: build.sysroot.as_ref().map(|sysroot| sysroot.key.oci()),
        inputs: node.key_inputs.clone(),
        differences: node
            .nearest
            .as_ref()
            .map(|nearest| {
                nearest
                    .differences
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        estimated_seconds: node
            .cost
            .seconds
            .or(node.nearest.as_ref().map(|nearest| nearest.seconds)),
    })
}
