//! `xbuild build` and `xbuild plan`: turn arguments into validated
//! options, run the pipeline, print the report.

use super::progress::BarReporter;
use super::{BuildArgs, CommonArgs, PlanArgs};
use std::io::Write;
use std::time::SystemTime;
use xbuild::Error;
use xbuild::cache::Cache;
use xbuild::manifest::Manifest;
use xbuild::pipeline::{self, BuildOptions};
use xbuild::platform::Platforms;

fn options(
    common: &CommonArgs,
    build_platform: Option<&str>,
) -> Result<(BuildOptions, Cache), Error> {
    let manifest_path = common.dir.join("xbuild.toml");
    let manifest = Manifest::load(&manifest_path)?;
    let platforms = Platforms::from_environment()?;
    let mut targets = Vec::new();
    for name in &common.targets {
        let platform = platforms.parse(name)?.clone();
        if !targets.contains(&platform) {
            targets.push(platform);
        }
    }
    let build_platform = match build_platform {
        Some(name) => platforms.parse(name)?.clone(),
        None => platforms.host()?.clone(),
    };
    let mut options = BuildOptions::new(manifest, targets, build_platform);
    if let Some(mirror) = &common.mirror {
        xbuild::debian::repository::check_url(mirror.trim_end_matches('/')).map_err(|reason| {
            xbuild::debian::repository::RepositoryError::InvalidMirror {
                option: common.mirror_option.to_owned(),
                value: xbuild::http::redact(mirror),
                reason,
            }
        })?;
    }
    options.mirror = common.mirror.clone();
    options.toolchain_suite = common.toolchain_suite.clone();
    options.require_hits = common.require_hits.map(Into::into);
    options.now = SystemTime::now();
    if let Some(timeout) = common.http_timeout {
        options.http_timeout = timeout;
    }
    if common.refresh {
        options.index_max_age = std::time::Duration::ZERO;
    }
    options.epoch = match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(epoch) => epoch.trim().parse().map_err(|_| Error::Target {
            target: "SOURCE_DATE_EPOCH".into(),
            message: format!("{epoch:?} is not a number of seconds since 1970"),
        })?,
        None => last_commit_time(&options.manifest.dir).unwrap_or(0),
    };
    let cache = Cache::open(&super::cache::root(common.cache_dir.as_deref())?)?;
    Ok((options, cache))
}

/// The time of the last commit that touched `directory` (the project), in
/// the git repository holding it: the time build layers and the image are
/// dated when `SOURCE_DATE_EPOCH` is not set (reproducible, like the
/// epoch, and meaningful, unlike 1970; a commit elsewhere in a monorepo
/// does not change it). `None` outside a repository or without git.
fn last_commit_time(directory: &std::path::Path) -> Option<u64> {
    let output = std::process::Command::new("git")
        .args(["log", "-1", "--format=%ct", "--", "."])
        .current_dir(directory)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn print_json<T: serde::Serialize>(value: &T) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`xbuild … --json | head`) is not an error.
    let _ = serde_json::to_writer_pretty(&mut stdout, value);
    let _ = writeln!(stdout);
}

pub fn build(args: BuildArgs, quiet: bool) -> Result<(), Error> {
    let (mut options, cache) = options(&args.common, None)?;
    if let Some(out) = &args.out {
        options.out_dir = out.clone();
    }
    options.max_builds = args.max_builds;
    options.allow_toolchain_build = args.allow_toolchain_build;
    options.quiet = quiet;
    if let Some(jobs) = args.jobs {
        options.jobs = jobs.max(1);
    }
    let reporter = BarReporter::new(quiet);
    let result = pipeline::build(&options, &cache, &reporter);
    reporter.finish_after(result.is_err());
    let report = result?;
    super::cache::record_build(&cache, &report);
    if args.common.json {
        print_json(&report);
    }
    if !quiet {
        // A closed stderr (`xbuild build … 2>&1 | head`) is not an error.
        let _ = write!(std::io::stderr().lock(), "{}", report.render_text());
    }
    Ok(())
}

pub fn plan(args: PlanArgs, quiet: bool) -> Result<(), Error> {
    let (options, cache) = options(&args.common, args.build_platform.as_deref())?;
    let reporter = BarReporter::new(quiet);
    let result = pipeline::plan(&options, &cache, &reporter);
    reporter.finish();
    let report = result?;
    if args.common.json {
        print_json(&report);
    } else {
        let _ = write!(
            std::io::stdout().lock(),
            "{}",
            report.render_text_with(args.explain)
        );
    }
    // The plan is printed either way; then `--require-hits` decides the
    // exit status.
    match options.require_hits {
        Some(require) => pipeline::check_hits(&report.plan, require),
        None => Ok(()),
    }
}
