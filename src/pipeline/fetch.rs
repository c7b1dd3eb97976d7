//! Fetching the `.deb`s of resolved packages: verified against the signed
//! index's digest, at most once per cache (even across processes), each
//! reported as a `deb` node.

use super::ResolvedPackage;
use super::resolve::ResolveContext;
use crate::Error;
use crate::cache::BlobOrigin;
use crate::cache::FetchVerified as _;
use crate::parallel;
use crate::plan::NodeKind;
use crate::progress::Batch;
use crate::report::NodeReport;
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
/// path in the cache and its report node (`target` names what it is for).
pub(super) fn fetch_deb(
    context: &ResolveContext,
    package: &ResolvedPackage,
    target: Option<&str>,
) -> Result<(PathBuf, NodeReport, BlobOrigin), Error> {
    let start = Instant::now();
    let url = format!("{}/{}", context.repository.url, package.filename);
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
    let node = NodeReport {
        kind: NodeKind::Deb,
        name: what,
        target: target.map(str::to_owned),
        outcome: origin.into(),
        bytes,
        seconds: start.elapsed().as_secs_f64(),
        saved_seconds: 0.0,
    };
    Ok((path, node, origin))
}

/// Fetches the `.deb`s of `packages` and returns their cache paths in the
/// packages' order, reporting each as a node.
pub(super) fn fetch_debs(
    context: &ResolveContext,
    packages: &[ResolvedPackage],
    target: &str,
    nodes: &mut Vec<NodeReport>,
) -> Result<Vec<PathBuf>, Error> {
    fetch_debs_then(context, packages, target, nodes, &|_, _| Ok(()))
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
    nodes: &mut Vec<NodeReport>,
    then: &(dyn Fn(usize, &Path) -> Result<(), Error> + Sync),
) -> Result<Vec<PathBuf>, Error> {
    let mut queue: Vec<usize> = (0..packages.len()).collect();
    queue.sort_by_key(|&index| std::cmp::Reverse(packages[index].size));
    let workers = context.options.jobs.clamp(1, 8);
    let bytes = packages.iter().map(|package| package.size).sum();
    let batch = Batch::start(context.reporter, target, packages.len(), bytes);
    let results = parallel::run_queue(&queue, workers, |index| {
        let (path, node, _) = fetch_deb(context, &packages[index], Some(target))?;
        batch.file_done(packages[index].size);
        then(index, &path)?;
        Ok::<_, Error>((path, node))
    });
    let mut paths = Vec::with_capacity(packages.len());
    for (path, node) in parallel::collect_in_order(results)? {
        nodes.push(node);
        paths.push(path);
    }
    Ok(paths)
}
