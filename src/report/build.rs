//! The report of `build`: per target, its packages and layers; every node
//! realizing the plan touched, with its outcome, bytes and time; time per
//! phase; and a summary that counts nodes by source, bytes moved per
//! source, and the build time cache hits saved.

use super::{NodeReport, Outcome, human_bytes};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct PackageReport {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub outcome: Outcome,
    pub size: u64,
    pub sha256: String,
    pub reason: String,
    /// The suite and component it came from (`bookworm-security/main`).
    pub origin: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub diff_id: String,
    pub packages: Vec<String>,
    pub outcome: Outcome,
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Bytes of documentation and locales left out of it.
    pub left_out_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub platform: String,
    pub manifest_digest: String,
    pub docker_archive: String,
    pub packages: Vec<PackageReport>,
    pub layers: Vec<LayerReport>,
    /// Bytes of documentation and locales left out of its layers
    /// (`[image] docs`, `keep`).
    pub left_out_bytes: u64,
    /// Dependencies left out, and why (install-time only, excluded).
    pub skipped: Vec<String>,
    /// Maintainer scripts that did not run, by package.
    pub skipped_scripts: BTreeMap<String, Vec<String>>,
    /// By package and script not run: its effects the configure layer
    /// made natively (empty: none).
    pub native_effects: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// With `--push`: where this target's manifest went, and what moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<crate::push::PushReport>,
    /// `[image] slim`: the full image's sizes beside the slim one's (whose
    /// layers `layers` lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slim: Option<SlimReport>,
}

/// A slim image against the full image it was cut from.
#[derive(Debug, Clone, Serialize)]
pub struct SlimReport {
    /// Bytes of the full image's compressed layers.
    pub full_size: u64,
    /// Bytes of the full image's uncompressed layers.
    pub full_uncompressed_size: u64,
    /// Bytes of the slim image's compressed layers.
    pub size: u64,
    /// Bytes of the slim image's uncompressed layers.
    pub uncompressed_size: u64,
    /// Paths (files, directories, links) kept.
    pub kept_paths: usize,
    /// The commands run on both images, with the same results.
    pub probes: Vec<String>,
}

/// Nodes by how they were satisfied, bytes moved per source, and time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Nodes hit in the local cache (an image written from layers that
    /// were all hits is one: writing its config and manifest is no build).
    pub local: u64,
    /// Nodes hit in a remote cache.
    pub remote: u64,
    /// Nodes downloaded upstream.
    pub downloaded: u64,
    /// Nodes built here.
    pub built: u64,
    /// Bytes moved, per source.
    pub bytes: SourceBytes,
    /// `bytes.downloaded`.
    pub bytes_downloaded: u64,
    /// `bytes.built`.
    pub bytes_written: u64,
    pub seconds: f64,
    /// Build time that cache hits saved: the recorded durations of the
    /// builds they stand for.
    pub saved_seconds: f64,
}

/// Bytes per source: read from the local cache (hits whose size is
/// known), fetched from remote caches, downloaded upstream, written by
/// builds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceBytes {
    pub local: u64,
    pub remote: u64,
    pub downloaded: u64,
    pub built: u64,
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
    /// The first source of the image's packages (`URL SUITE`).
    pub repository: String,
    /// Every package source, in order (a package's origin names one).
    pub sources: Vec<crate::plan::SourceSummary>,
    /// What to know about the sources (a stable suite without its
    /// `-security` source).
    pub notes: Vec<String>,
    pub summary: Summary,
    pub phases: Phases,
    pub targets: Vec<TargetReport>,
    pub nodes: Vec<NodeReport>,
    pub oci_layout: String,
    /// With `--push`: the reference pushed and the digest it names (an
    /// index with several targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<crate::push::PushOutcome>,
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
            let (count, bytes) = match node.outcome {
                Outcome::Local => (&mut summary.local, &mut summary.bytes.local),
                Outcome::Remote => (&mut summary.remote, &mut summary.bytes.remote),
                Outcome::Downloaded => (&mut summary.downloaded, &mut summary.bytes.downloaded),
                Outcome::Built => (&mut summary.built, &mut summary.bytes.built),
            };
            *count += 1;
            *bytes += node.bytes;
        }
        summary.bytes_downloaded = summary.bytes.downloaded;
        summary.bytes_written = summary.bytes.built;
        self.summary = summary;
    }

    /// The report for people.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        for note in &self.notes {
            let _ = writeln!(text, "warning: {note}");
        }
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
                    "  {:<28} {:<24} {:<22} {:>9}  {:<10}  {}",
                    package.name,
                    package.version,
                    package.origin,
                    human_bytes(package.size),
                    package.outcome.label(),
                    package.reason
                );
            }
            for note in &target.skipped {
                let _ = writeln!(text, "  skipped: {note}");
            }
            if target.left_out_bytes > 0 {
                let _ = writeln!(
                    text,
                    "  documentation and locales left out: {} (`docs = true` keeps them)",
                    human_bytes(target.left_out_bytes)
                );
            }
            if let Some(slim) = &target.slim {
                let _ = writeln!(
                    text,
                    "  slim: {} uncompressed ({} compressed), full: {} ({}); {} paths kept; same output on both: {}",
                    human_bytes(slim.uncompressed_size),
                    human_bytes(slim.size),
                    human_bytes(slim.full_uncompressed_size),
                    human_bytes(slim.full_size),
                    slim.kept_paths,
                    slim.probes.join(", ")
                );
            }
            if !target.skipped_scripts.is_empty() {
                let scripts: Vec<String> = target
                    .skipped_scripts
                    .iter()
                    .map(|(package, scripts)| {
                        let scripts: Vec<String> = scripts
                            .iter()
                            .map(|script| {
                                match target
                                    .native_effects
                                    .get(package)
                                    .and_then(|effects| effects.get(script))
                                    .filter(|done| !done.is_empty())
                                {
                                    Some(done) => format!("{script}: {}", done.join(", ")),
                                    None => script.clone(),
                                }
                            })
                            .collect();
                        format!("{package} ({})", scripts.join(", "))
                    })
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
            "{} local, {}{} downloaded ({}), {} built ({}) in {:.2}s [resolve {:.2}s, build {:.2}s, fetch {:.2}s, layers {:.2}s, assemble {:.2}s]{}",
            s.local,
            if s.remote > 0 {
                format!("{} remote ({}), ", s.remote, human_bytes(s.bytes.remote))
            } else {
                String::new()
            },
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
                format!("; cache hits saved ~{:.2}s of building", s.saved_seconds)
            } else {
                String::new()
            }
        );
        text
    }
}
