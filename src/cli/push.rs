//! `xbuild push [DIR] REF` and `build --push REF`: a build's OCI layout to
//! a registry.

use super::{MergeArgs, PushArgs, RegistryArgs};
use std::io::Write as _;
use std::time::Duration;
use xbuild::Error;
use xbuild::cache::Cache;
use xbuild::push::{PushOutcome, PushSettings, Reference};

/// The registry settings of the command line, with credentials located as
/// docker and podman store them; `http_timeout` is `--http-timeout`.
pub(super) fn settings(args: &RegistryArgs, http_timeout: Option<Duration>) -> PushSettings {
    let mut remote = xbuild::cache::backend::RemoteConfig::from_env();
    if let Some(timeout) = http_timeout {
        remote = remote.with_idle_timeout(timeout);
    }
    if let Some(ca) = &args.registry_ca {
        remote = remote.with_extra_ca(ca.clone());
    }
    PushSettings {
        insecure_registries: args.insecure_registries.clone(),
        remote,
        chunk: std::env::var("XBUILD_PUSH_CHUNK_BYTES")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(0),
        mount_candidates: Vec::new(),
    }
}

/// The `oci://` remote caches among `urls`, as (`host[:port]`, repository):
/// where a push may mount layer blobs from.
pub(super) fn mount_candidates(urls: &[&str]) -> Vec<(String, String)> {
    urls.iter()
        .filter_map(|url| {
            let (scheme, rest) = url.split_once("://")?;
            if !matches!(scheme, "oci" | "oci+http" | "oci+https") {
                return None;
            }
            let (authority, repository) = rest.trim_end_matches('/').split_once('/')?;
            Some((authority.to_owned(), repository.to_owned()))
        })
        .collect()
}

pub(super) fn parse_reference(text: &str, option: &str) -> Result<Reference, Error> {
    text.parse().map_err(|message| Error::Target {
        target: option.to_owned(),
        message,
    })
}

/// Pushes the layout at `layout` (each image of it) to `reference`.
pub(super) fn push_layout(
    cache: &Cache,
    layout: &std::path::Path,
    reference: &Reference,
    registry: &RegistryArgs,
    http_timeout: Option<Duration>,
    remotes: &[&str],
) -> Result<PushOutcome, Error> {
    let mut settings = settings(registry, http_timeout);
    settings.mount_candidates = mount_candidates(remotes);
    xbuild::push::push_layout(cache, layout, reference, &settings)
}

pub fn push(args: PushArgs, quiet: bool) -> Result<(), Error> {
    let reference = parse_reference(args.reference(), "REF")?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir().join("result"));
    let cache = Cache::open(&super::cache::root(args.cache_dir.as_deref())?)?;
    let outcome = push_layout(
        &cache,
        &out.join("oci"),
        &reference,
        &args.registry,
        args.http_timeout,
        &[],
    )?;
    if args.json {
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut stdout, &outcome);
        let _ = writeln!(stdout);
    }
    if !quiet {
        let _ = write!(
            std::io::stderr().lock(),
            "{}",
            xbuild::push::render(&outcome)
        );
    }
    Ok(())
}

pub fn merge(args: MergeArgs, quiet: bool) -> Result<(), Error> {
    let dest = parse_reference(&args.dest, "DEST")?;
    let mut sources = Vec::new();
    for source in &args.sources {
        sources.push(parse_reference(source, "SRC")?);
    }
    let mut annotations = std::collections::BTreeMap::new();
    for annotation in &args.annotations {
        let Some((key, value)) = annotation
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
        else {
            return Err(Error::Target {
                target: "--annotation".into(),
                message: format!("`{annotation}` is not KEY=VALUE"),
            });
        };
        annotations.insert(key.to_owned(), value.to_owned());
    }
    let settings = settings(&args.registry, args.http_timeout);
    let outcome = xbuild::push::merge(&dest, &sources, &annotations, &settings)?;
    if args.json {
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut stdout, &outcome);
        let _ = writeln!(stdout);
    }
    if !quiet {
        let mut text = format!("merged {} ({})\n", outcome.reference, outcome.digest);
        for manifest in &outcome.manifests {
            text.push_str(&format!(
                "  {}: {} from {}{}\n",
                manifest.platform,
                manifest.digest,
                manifest.source,
                if manifest.copied {
                    format!(" (copied, {} blobs mounted)", manifest.blobs_mounted)
                } else {
                    String::new()
                }
            ));
        }
        let _ = write!(std::io::stderr().lock(), "{text}");
    }
    Ok(())
}
