//! The build report: every node with its outcome (cache hit, downloaded,
//! built), bytes and time; per-target packages and layers; time per phase;
//! and a summary. Serialised as JSON for machines and rendered as text for
//! people.

use crate::plan::NodeKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How a node was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Hit in the local cache.
    Local,
    /// Hit in a shared (remote) cache.
    Remote,
    /// Fetched from upstream (the Debian archive).
    Downloaded,
    /// Produced here (compressed, compiled).
    Built,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Local => "cached",
            Outcome::Remote => "remote cache",
            Outcome::Downloaded => "downloaded",
            Outcome::Built => "built",
        }
    }
}

impl From<crate::cache::BlobOrigin> for Outcome {
    fn from(origin: crate::cache::BlobOrigin) -> Outcome {
        match origin {
            crate::cache::BlobOrigin::Local => Outcome::Local,
            crate::cache::BlobOrigin::Downloaded => Outcome::Downloaded,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub kind: NodeKind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub outcome: Outcome,
    /// Bytes transferred (downloads) or written (builds).
    pub bytes: u64,
    pub seconds: f64,
    /// For a cache hit: how long producing it took when it was built.
    #[serde(skip_serializing_if = "is_zero")]
    pub saved_seconds: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

#[derive(Debug, Clone, Serialize)]
pub struct PackageReport {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub outcome: Outcome,
    pub size: u64,
    pub sha256: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub diff_id: String,
    pub packages: Vec<String>,
    pub outcome: Outcome,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub platform: String,
    pub manifest_digest: String,
    pub docker_archive: String,
    pub packages: Vec<PackageReport>,
    pub layers: Vec<LayerReport>,
    /// Dependencies left out, and why (install-time only, excluded).
    pub skipped: Vec<String>,
    /// Maintainer scripts that did not run, by package.
    pub skipped_scripts: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub local: u64,
    pub remote: u64,
    pub downloaded: u64,
    pub built: u64,
    pub bytes_downloaded: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    /// Build time that cache hits saved.
    pub saved_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    pub resolve: f64,
    /// Toolchains, sysroots and builds of the user's code.
    pub build: f64,
    pub fetch: f64,
    pub layers: f64,
    pub assemble: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub xbuild_version: &'static str,
    pub build_platform: String,
    pub repository: String,
    pub summary: Summary,
    pub phases: Phases,
    pub targets: Vec<TargetReport>,
    pub nodes: Vec<NodeReport>,
    pub oci_layout: String,
}

impl BuildReport {
    /// Recomputes the summary from the nodes.
    pub fn summarize(&mut self, seconds: f64) {
        let mut summary = Summary {
            seconds,
            ..Summary::default()
        };
        for node in &self.nodes {
            summary.saved_seconds += node.saved_seconds;
            match node.outcome {
                Outcome::Local => summary.local += 1,
                Outcome::Remote => summary.remote += 1,
                Outcome::Downloaded => {
                    summary.downloaded += 1;
                    summary.bytes_downloaded += node.bytes;
                }
                Outcome::Built => {
                    summary.built += 1;
                    summary.bytes_written += node.bytes;
                }
            }
        }
        self.summary = summary;
    }

    /// The report for people.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        for target in &self.targets {
            let _ = writeln!(
                text,
                "{} ({}): {} packages in {} layers → {}",
                target.target,
                target.platform,
                target.packages.len(),
                target.layers.len(),
                target.manifest_digest
            );
            for package in &target.packages {
                let _ = writeln!(
                    text,
                    "  {:<28} {:<24} {:>9}  {:<10}  {}",
                    package.name,
                    package.version,
                    human_bytes(package.size),
                    package.outcome.label(),
                    package.reason
                );
            }
            for note in &target.skipped {
                let _ = writeln!(text, "  skipped: {note}");
            }
            if !target.skipped_scripts.is_empty() {
                let scripts: Vec<String> = target
                    .skipped_scripts
                    .iter()
                    .map(|(package, scripts)| format!("{package} ({})", scripts.join(", ")))
                    .collect();
                let _ = writeln!(
                    text,
                    "  maintainer scripts not run (no emulation): {}",
                    scripts.join("; ")
                );
            }
            let _ = writeln!(text, "  docker-archive: {}", target.docker_archive);
        }
        let s = &self.summary;
        let _ = writeln!(text, "OCI layout: {}", self.oci_layout);
        let _ = writeln!(
            text,
            "{} cached, {} downloaded ({}), {} built ({}) in {:.2}s [resolve {:.2}s, build {:.2}s, fetch {:.2}s, layers {:.2}s, assemble {:.2}s]{}",
            s.local + s.remote,
            s.downloaded,
            human_bytes(s.bytes_downloaded),
            s.built,
            human_bytes(s.bytes_written),
            s.seconds,
            self.phases.resolve,
            self.phases.build,
            self.phases.fetch,
            self.phases.layers,
            self.phases.assemble,
            if s.saved_seconds > 0.0 {
                format!("; cache hits saved ~{:.1}s of building", s.saved_seconds)
            } else {
                String::new()
            }
        );
        text
    }
}

/// `12.3 MB`-style sizes (powers of 1000, like most download tools).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(15_100_000), "15.1 MB");
    }
}
