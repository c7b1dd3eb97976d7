//! The summaries of the last builds on this cache (`logs-v1/builds-v1.jsonl`,
//! one JSON line per build, the last [`KEPT_BUILDS`] kept): what `xbuild
//! cache stats` reports hit rates from.

use crate::{Bucket, Cache, CacheError, atomic_write, io_error};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

/// How many build summaries are kept.
pub const KEPT_BUILDS: usize = 100;

const FILE: &str = "builds-v1.jsonl";

/// What one build did, counted by node outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildSummary {
    /// When it finished (seconds since 1970).
    pub finished: u64,
    pub targets: Vec<String>,
    pub local: u64,
    pub remote: u64,
    pub downloaded: u64,
    pub built: u64,
    pub bytes_downloaded: u64,
    pub seconds: f64,
    /// Build time that cache hits saved.
    pub saved_seconds: f64,
}

impl BuildSummary {
    /// Nodes that were cache hits (local or remote).
    pub fn hits(&self) -> u64 {
        self.local + self.remote
    }

    pub fn nodes(&self) -> u64 {
        self.local + self.remote + self.downloaded + self.built
    }
}

impl Cache {
    fn history_path(&self) -> PathBuf {
        self.root().join(Bucket::Logs.name()).join(FILE)
    }

    /// Adds a build's summary, dropping the oldest beyond [`KEPT_BUILDS`].
    pub fn record_build(&self, summary: &BuildSummary) -> Result<(), CacheError> {
        let _lock = self.lock_named("build-history-log")?;
        let path = self.log_path(FILE)?;
        let mut builds = self.recent_builds()?;
        builds.push(summary.clone());
        let excess = builds.len().saturating_sub(KEPT_BUILDS);
        let mut text = String::new();
        for build in &builds[excess..] {
            text.push_str(&serde_json::to_string(build).expect("summaries always serialize"));
            text.push('\n');
        }
        atomic_write(&self.tmp_dir(), &path, text.as_bytes()).map_err(io_error(&path))
    }

    /// The summaries of the last builds, oldest first (lines that do not
    /// parse are skipped).
    pub fn recent_builds(&self) -> Result<Vec<BuildSummary>, CacheError> {
        let path = self.history_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_builds_are_kept_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert!(cache.recent_builds().unwrap().is_empty());
        for index in 0..(KEPT_BUILDS as u64 + 5) {
            let summary = BuildSummary {
                finished: index,
                local: index,
                built: 1,
                ..BuildSummary::default()
            };
            cache.record_build(&summary).unwrap();
        }
        let builds = cache.recent_builds().unwrap();
        assert_eq!(builds.len(), KEPT_BUILDS);
        assert_eq!(builds[0].finished, 5);
        assert_eq!(builds.last().unwrap().hits(), KEPT_BUILDS as u64 + 4);
    }
}
