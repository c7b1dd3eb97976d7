//! Fetching the `.deb`s of resolved packages: verified against the signed
//! index's digest, at most once per cache (even across processes), each
//! one's outcome recorded against its `deb` node.

use super::ResolvedPackage;
use super::resolve::ResolveContext;
use crate::Error;
use crate::cache::BlobOrigin;
use crate::cache::FetchVerified as _;
use crate::parallel;
use crate::plan::NodeKind;
use crate::progress::Batch;
use crate::report::{NodeOutcome, Outcome, Outcomes};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `<name>_<version>_<architecture>.deb`: how a package is named in
/// reports and progress.
pub(super) fn deb_label(package: &ResolvedPackage) -> String {
    format!(
        "{}_{}_{}.deb",
        package.name, package.version, package.architecture
    )
}

/// Fetches one package's `.deb` from the context's repository; returns its
/// path in the cache and records its outcome (`target` names what it is
/// for in errors).
pub(super) fn fetch_deb(
    context: &ResolveContext,
    package: &ResolvedPackage,
    target: Option<&str>,
    outcomes: &Outcomes,
) -> Result<PathBuf, Error> {
    let start = Instant::now();
    let url = context.package_url(package);
    let what = deb_label(package);
    let (path, origin, bytes) = context
        .cache
        .fetch_verified(
            context.http,
            &[url],
            &package.sha256,
            package.size,
            &what,
            context.reporter,
        )
        .map_err(|error| Error::Package {
            package: format!("{} {}", package.name, package.version),
            target: target.unwrap_or(&package.architecture).to_owned(),
            source: Box::new(error.into()),
        })?;
    let outcome = match origin {
        // A hit moves the package's bytes out of the local cache.
        BlobOrigin::Local => NodeOutcome::new(Outcome::Local).with_bytes(package.size),
        BlobOrigin::Downloaded => NodeOutcome::new(Outcome::Downloaded)
            .with_bytes(bytes)
            .with_seconds(start.elapsed().as_secs_f64()),
    };
    outcomes.record(NodeKind::Deb, &package.sha256, outcome);
    Ok(path)
}

/// Fetches the `.deb`s of `packages` and returns their cache paths in the
/// packages' order, recording each one's outcome.
pub(super) fn fetch_debs(
    context: &ResolveContext,
    packages: &[ResolvedPackage],
    target: &str,
    outcomes: &Outcomes,
) -> Result<Vec<PathBuf>, Error> {
    fetch_debs_then(context, packages, target, outcomes, &|_, _| Ok(()))
}

/// [`fetch_debs`] that hands each verified `.deb` to `then`, with the
/// package's index, on the thread that fetched it, as soon as it is in
/// the cache: work on one package overlaps the downloads of the others.
/// Downloads run on a few threads (they wait on the network, not the CPU),
/// largest first so that the longest `then` does not start last; after a
/// failure no new one starts.
pub(super) fn fetch_debs_then(
    context: &ResolveContext,
    packages: &[ResolvedPackage],
    target: &str,
    outcomes: &Outcomes,
    then: &(dyn Fn(usize, &Path) -> Result<(), Error> + Sync),
) -> Result<Vec<PathBuf>, Error> {
    let mut queue: Vec<usize> = (0..packages.len()).collect();
    queue.sort_by_key(|&index| std::cmp::Reverse(packages[index].size));
    let workers = context.options.jobs.clamp(1, 8);
    let bytes = packages.iter().map(|package| package.size).sum();
    let batch = Batch::start(context.reporter, target, packages.len(), bytes);
    let results = parallel::run_queue(&queue, workers, |index| {
        let path = fetch_deb(context, &packages[index], Some(target), outcomes)?;
        batch.file_done(packages[index].size);
        then(index, &path)?;
        Ok::<_, Error>(path)
    });
    parallel::collect_in_order(results)
}
