//! `xbuild cache stats | gc | verify`: a thin layer over the cache crate's
//! maintenance ([`xbuild::cache::stats`], [`xbuild::cache::gc`],
//! [`xbuild::cache::verify`]), and the summary line every build records.

use super::{CacheArgs, CacheCommand, CacheDirArgs, GcArgs};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use xbuild::Error;
use xbuild::cache::history::BuildSummary;
use xbuild::cache::{Cache, CacheError};
use xbuild::report::{BuildReport, human_bytes};

/// The cache directory: `--cache-dir` (or `XBUILD_CACHE_DIR`), else the
/// user's cache directory + `xbuild`; absolute, since build scripts and
/// toolchain wrappers run from other directories and are given paths
/// inside it.
pub fn root(dir: Option<&Path>) -> Result<PathBuf, Error> {
    let root = match dir {
        Some(dir) => dir.to_owned(),
        None => Cache::default_root().ok_or_else(|| CacheError::Init {
            path: "~/.cache/xbuild".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no home or cache directory is known; set XBUILD_CACHE_DIR",
            ),
        })?,
    };
    Ok(std::path::absolute(&root).unwrap_or(root))
}

/// Adds a finished build's summary to the cache's log of recent builds
/// (best effort: a build that succeeded does not fail over its summary).
pub fn record_build(cache: &Cache, report: &BuildReport) {
    let summary = &report.summary;
    let finished = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs());
    let _ = cache.record_build(&BuildSummary {
        finished,
        targets: report
            .targets
            .iter()
            .map(|target| target.target.clone())
            .collect(),
        local: summary.local,
        remote: summary.remote,
        downloaded: summary.downloaded,
        built: summary.built,
        bytes_downloaded: summary.bytes_downloaded,
        seconds: summary.seconds,
        saved_seconds: summary.saved_seconds,
    });
}

pub fn run(args: CacheArgs, quiet: bool) -> Result<(), Error> {
    match args.command {
        CacheCommand::Stats(args) => stats(&args),
        CacheCommand::Gc(args) => gc(&args),
        CacheCommand::Verify(args) => verify(&args),
        CacheCommand::Prewarm(args) => super::prewarm::prewarm(*args, quiet),
        CacheCommand::Keygen(args) => super::prewarm::keygen(&args),
    }
}

fn print(text: &str) {
    // A closed pipe (`xbuild cache stats | head`) is not an error.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn print_json<T: serde::Serialize>(value: &T) {
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut stdout, value);
    let _ = writeln!(stdout);
}

fn stats(args: &CacheDirArgs) -> Result<(), Error> {
    let cache = Cache::open(&root(args.cache_dir.as_deref())?)?;
    let stats = cache.stats()?;
    if args.json {
        print_json(&stats);
        return Ok(());
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "cache {}: {}",
        stats.location.display(),
        human_bytes(stats.total_bytes)
    );
    let _ = writeln!(
        text,
        "{:<27} {:>8} {:>10} {:>8} {:>10} {:>7}",
        "bucket", "entries", "bytes", "trees", "bytes", "packed"
    );
    for bucket in &stats.buckets {
        if bucket.entries == 0 && bucket.directories == 0 {
            continue;
        }
        let (trees, tree_bytes, packed) = match bucket.kind {
            "entries" => (String::new(), String::new(), String::new()),
            "tree" => (
                bucket.directories.to_string(),
                human_bytes(bucket.directory_bytes),
                bucket.packed.to_string(),
            ),
            _ => (
                bucket.directories.to_string(),
                human_bytes(bucket.directory_bytes),
                String::new(),
            ),
        };
        let _ = writeln!(
            text,
            "{:<27} {:>8} {:>10} {:>8} {:>10} {:>7}",
            bucket.bucket.name(),
            bucket.entries,
            human_bytes(bucket.entry_bytes),
            trees,
            tree_bytes,
            packed
        );
    }
    let blobs = &stats.blobs;
    let _ = writeln!(
        text,
        "blobs: {} ({}), {} of them needed by entries ({})",
        blobs.count,
        human_bytes(blobs.bytes),
        blobs.needed,
        human_bytes(blobs.needed_bytes)
    );
    if stats.legacy_bytes > 0 {
        let _ = writeln!(
            text,
            "left by older versions of xbuild: {} (removed first by `xbuild cache gc`)",
            human_bytes(stats.legacy_bytes)
        );
    }
    let recent = &stats.recent_builds;
    match recent.hit_rate {
        None => {
            let _ = writeln!(text, "recent builds: none recorded");
        }
        Some(rate) => {
            let _ = writeln!(
                text,
                "recent builds: {} (the last {} are kept): nodes {} local, {} remote, {} downloaded ({}), {} built; hit rate {:.0}%, {:.0} s of building saved",
                recent.builds,
                xbuild::cache::history::KEPT_BUILDS,
                recent.local,
                recent.remote,
                recent.downloaded,
                human_bytes(recent.bytes_downloaded),
                recent.built,
                rate * 100.0,
                recent.saved_seconds
            );
            for build in &recent.latest {
                let _ = writeln!(
                    text,
                    "  {}  {:<24} {} local, {} remote, {} downloaded, {} built, {:.1} s",
                    xbuild::image::oci::format_rfc3339(build.finished),
                    build.targets.join(" "),
                    build.local,
                    build.remote,
                    build.downloaded,
                    build.built,
                    build.seconds
                );
            }
        }
    }
    print(&text);
    Ok(())
}

fn gc(args: &GcArgs) -> Result<(), Error> {
    let cache = Cache::open_exclusive(&root(args.cache.cache_dir.as_deref())?)?;
    let report = cache.gc(args.max_size)?;
    if args.cache.json {
        print_json(&report);
        return Ok(());
    }
    let mut text = String::new();
    for removed in &report.removed {
        let _ = writeln!(
            text,
            "removed {} ({})",
            removed.what,
            human_bytes(removed.bytes)
        );
    }
    let _ = writeln!(
        text,
        "freed {} in {} items: the cache holds {} (at most {} asked)",
        human_bytes(report.freed_bytes),
        report.removed.len(),
        human_bytes(report.after_bytes),
        human_bytes(report.max_bytes)
    );
    print(&text);
    Ok(())
}

fn verify(args: &CacheDirArgs) -> Result<(), Error> {
    let cache = Cache::open_exclusive(&root(args.cache_dir.as_deref())?)?;
    let report = cache.verify()?;
    if args.json {
        print_json(&report);
    } else {
        let mut text = String::new();
        for problem in &report.problems {
            let _ = writeln!(
                text,
                "problem: {} ({}) {}: {}",
                problem.subject,
                problem.path.display(),
                problem.problem,
                problem.action
            );
        }
        let _ = writeln!(
            text,
            "checked {} blobs ({}), {} entries, {} trees ({} packed): {} problem{}",
            report.blobs,
            human_bytes(report.blob_bytes),
            report.entries,
            report.trees,
            report.packed_trees,
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
        print(&text);
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::CacheCorrupt {
            problems: report.problems.len(),
        })
    }
}
