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
use xbuild::shared::{Shared, SharedSettings};

/// What a command runs with: its options, the cache (reading through the
/// remotes when `read_through`), and the remotes.
pub(super) struct Setup {
    pub options: BuildOptions,
    pub cache: Cache,
    pub shared: Option<Shared>,
}

/// The remote settings of the command line merged with the manifest's
/// `[cache]` (the command line's remotes are asked first).
fn shared_settings(common: &CommonArgs, manifest: &Manifest) -> SharedSettings {
    let mut settings = SharedSettings {
        remotes: common.shared.remotes.clone(),
        trusted_keys: common.shared.trusted_keys.clone(),
        signing_key: common.shared.signing_key.clone(),
        read_only: common.shared.remote_read_only,
    };
    settings.remotes.retain(|remote| !remote.trim().is_empty());
    for remote in &manifest.cache.remotes {
        if !settings.remotes.contains(remote) {
            settings.remotes.push(remote.clone());
        }
    }
    for key in &manifest.cache.trusted_keys {
        if !settings.trusted_keys.contains(key) {
            settings.trusted_keys.push(key.clone());
        }
    }
    settings
}

pub(super) fn setup(
    common: &CommonArgs,
    build_platform: Option<&str>,
    read_through: bool,
) -> Result<Setup, Error> {
    let (mut options, cache) = options(common, build_platform)?;
    let settings = shared_settings(common, &options.manifest);
    for remote in &settings.remotes {
        xbuild::manifest::check_remote_url(remote).map_err(|reason| Error::Target {
            target: "--remote".into(),
            message: reason,
        })?;
    }
    if settings.remotes.is_empty() && settings.signing_key.is_some() {
        return Err(Error::Target {
            target: "--sign".into(),
            message: "signs what is uploaded to a remote cache, and no remote is given: add --remote URL (or XBUILD_REMOTE, or [cache] remote in xbuild.toml)".into(),
        });
    }
    let mut shared = Shared::open(
        &settings,
        &options.manifest.image.name,
        options.http_timeout,
    )?;
    // The plan sees what the remotes hold; a build also reads through
    // them (a plan only asks).
    let cache = match &mut shared {
        Some(shared) => {
            options.remote = std::sync::Arc::new(shared.status());
            if read_through {
                shared.upload_as_it_goes(cache.with_fallback(shared.reader.clone()))?
            } else {
                cache
            }
        }
        None => cache,
    };
    Ok(Setup {
        options,
        cache,
        shared,
    })
}

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
    if let Some(age) = common.shared_index_max_age {
        options.shared_index_max_age = age;
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
    let Setup {
        mut options,
        cache,
        shared,
    } = setup(&args.common, None, true)?;
    if let Some(out) = &args.out {
        options.out_dir = out.clone();
    }
    options.max_builds = args.max_builds;
    options.allow_toolchain_build = args.allow_toolchain_build;
    options.quiet = quiet;
    if let Some(jobs) = args.jobs {
        options.jobs = jobs.max(1);
    }
    // A bad reference is refused before any work.
    let push_to = match &args.push {
        Some(text) => Some(super::push::parse_reference(text, "--push")?),
        None => None,
    };
    let reporter = BarReporter::new(quiet);
    let result = pipeline::build(&options, &cache, &reporter);
    reporter.finish_after(result.is_err());
    let mut report = match result {
        Ok(report) => report,
        Err(error) => {
            // What was made before the failure is shared all the same.
            if let Some(upload) = shared.as_ref().and_then(Shared::finish_uploads)
                && !quiet
            {
                eprint!("{}", xbuild::shared::render_upload(&upload));
            }
            return Err(error);
        }
    };
    if let Some(shared) = &shared {
        shared.mark_remote_hits(&cache, &mut report);
        if let Some(upload) = shared.push(&cache, &report)? {
            if !quiet {
                eprint!("{}", xbuild::shared::render_upload(&upload));
            }
            if upload.has_failures() {
                eprintln!(
                    "warning: some uploads to the remote cache failed (the build itself succeeded)"
                );
            }
        }
    }
    super::cache::record_build(&cache, &report);
    if let Some(reference) = &push_to {
        let layout = std::path::PathBuf::from(&report.oci_layout);
        let remotes = shared
            .as_ref()
            .map(|shared| shared.reader.remotes().urls())
            .unwrap_or_default();
        let outcome = super::push::push_layout(
            &cache,
            &layout,
            reference,
            &args.registry,
            args.common.http_timeout,
            &remotes,
        )?;
        for target in &mut report.targets {
            target.push = outcome
                .images
                .iter()
                .find(|image| image.manifest_digest == target.manifest_digest)
                .cloned();
        }
        if !quiet {
            eprint!("{}", xbuild::push::render(&outcome));
        }
        report.push = Some(outcome);
    }
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
    let Setup { options, cache, .. } = setup(&args.common, args.build_platform.as_deref(), false)?;
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
