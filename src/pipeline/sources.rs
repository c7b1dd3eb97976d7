//! Where a build's sources come from: a local directory (`path`), a Debian
//! source package from the signed `Sources` index (`{ debian = "hello" }`:
//! InRelease signature → `Sources` digest → every file's digest), or a
//! tarball named by its sha256 (`{ url, sha256 }`). Planning a source
//! computes its digest — what a build's key covers — without downloading
//! the package itself; materializing fetches (once per cache), verifies and
//! unpacks it into `sources-v1/<digest>/`.

use super::resolve::ResolveContext;
use crate::Error;
use crate::cache::Cache;
use crate::cache::FetchVerified as _;
use crate::cache::{Bucket, CacheError, EntryMeta, TreeOrigin};
use crate::debian::source::{
    SourceFile, SourcePackage, find_source_in_file, source_file_url, sources_index_path,
    unpack_source,
};
use crate::hash::{Hasher, Sha256Digest};
use crate::manifest::{BuildSource, BuildSpec};
use crate::plan::{KeyBuilder, NodeKind};
use crate::report::{NodeOutcome, Outcome, Outcomes};
use fs_err as fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        Error::Cache(CacheError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// How [`unpack_source`] lays out a Debian source package, part of its
/// digest: the digest names the unpacked tree (`sources-v1/<digest>/`) and
/// goes into build keys, so a tree laid out by an older xbuild is never
/// reused. `quilt-applied-v1`: the quilt patches of a `3.0 (quilt)` package
/// are applied (before, they were not). Change it whenever the unpacked
/// tree changes.
const DEBIAN_SOURCE_LAYOUT: &str = "quilt-applied-v1";

/// A build's sources, planned.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedSource {
    Path(PathBuf),
    Debian(SourcePackage),
    Url { url: String, sha256: Sha256Digest },
}

impl PlannedSource {
    /// What a build key covers of the sources.
    pub fn digest(&self) -> Result<Sha256Digest, Error> {
        self.digest_excluding(&[])
    }

    /// [`PlannedSource::digest`], leaving out of a local tree the
    /// directories `excluded` (xbuild's output and cache, wherever they
    /// are: never part of a source).
    pub fn digest_excluding(&self, excluded: &[PathBuf]) -> Result<Sha256Digest, Error> {
        Ok(match self {
            PlannedSource::Path(path) => source_digest(path, excluded)?,
            PlannedSource::Debian(package) => {
                let mut key = KeyBuilder::new("debian-source")
                    .text("layout", DEBIAN_SOURCE_LAYOUT)
                    .text("package", &package.name)
                    .text("version", &package.version);
                for file in &package.files {
                    key = key.text("file", &file.name).digest("sha256", &file.sha256);
                }
                key.finish()
            }
            PlannedSource::Url { sha256, .. } => *sha256,
        })
    }

    /// For reports: `path`, `debian:hello=2.10-3`, or the URL.
    pub fn describe(&self) -> String {
        match self {
            PlannedSource::Path(path) => {
                path.components().collect::<PathBuf>().display().to_string()
            }
            PlannedSource::Debian(package) => {
                format!("debian:{}={}", package.name, package.version)
            }
            PlannedSource::Url { url, .. } => crate::http::redact(url),
        }
    }
}

/// Finds a build's sources: for a Debian source package, its entry in the
/// repository's signed `Sources` index (fetched by digest, once per cache).
pub(super) fn plan_source(
    context: &ResolveContext,
    build: &BuildSpec,
) -> Result<PlannedSource, Error> {
    match &build.source {
        None => Ok(PlannedSource::Path(build.path.clone())),
        Some(BuildSource::Url { url, sha256 }) => Ok(PlannedSource::Url {
            url: url.clone(),
            sha256: *sha256,
        }),
        Some(BuildSource::Debian(name)) => plan_debian_source(context, name),
    }
}

/// A Debian source package's entry in the signed `Sources` indices of the
/// context's sources (each fetched by digest, once per cache; each lookup
/// cached by the index digest): the highest version any of them has, as
/// `apt-get source` takes it.
pub(super) fn plan_debian_source(
    context: &ResolveContext,
    name: &str,
) -> Result<PlannedSource, Error> {
    let mut best: Option<(crate::debian::version::Version, SourcePackage)> = None;
    for (position, source) in context.used() {
        let repository = &source.repository;
        let suite_url = format!("{}/dists/{}", repository.url, repository.suite);
        for component in &repository.components {
            let Some((path, hash)) = sources_index_path(&source.release.release, component) else {
                continue;
            };
            // The lookup is cached by the index digest: an unchanged
            // rebuild neither reads nor decompresses the index.
            let lookup = KeyBuilder::new("source-lookup")
                .digest("sources-index", &hash.digest)
                .text("package", name)
                .finish();
            let found = match context
                .cache
                .get_entry::<SourcePackage>(Bucket::SourceLookup, &lookup)?
            {
                Some(package) => Some(package),
                None => {
                    let url = format!("{suite_url}/{path}");
                    let (blob, _, _) = context.cache.fetch_verified(
                        context.http,
                        &[url],
                        &hash.digest,
                        hash.size,
                        &path,
                        context.reporter,
                    )?;
                    let found = find_source_in_file(&blob, &path, name).map_err(|source| {
                        Error::Source {
                            what: format!("package {name} in {path}"),
                            source,
                        }
                    })?;
                    if let Some(package) = &found {
                        context.cache.put_entry(
                            Bucket::SourceLookup,
                            &lookup,
                            package,
                            EntryMeta::any(),
                        )?;
                    }
                    found
                }
            };
            let Some(package) = found else {
                continue;
            };
            let Ok(version) = package.version.parse::<crate::debian::version::Version>() else {
                continue;
            };
            if best.as_ref().is_none_or(|(known, _)| version > *known) {
                best = Some((
                    version,
                    SourcePackage {
                        origin: position,
                        ..package
                    },
                ));
            }
        }
    }
    match best {
        Some((_, package)) => Ok(PlannedSource::Debian(package)),
        None => Err(Error::Target {
            target: format!("source package {name}"),
            message: format!(
                "no source package {name} in the Sources indices of {}",
                context.describe()
            ),
        }),
    }
}

/// Where the unpacked tree of sources with this digest lives.
fn source_root(cache: &Cache, digest: &Sha256Digest) -> PathBuf {
    cache.tree_path(Bucket::Sources, digest)
}

/// Whether the cache holds the unpacked tree of a planned source (a local
/// directory is always there).
pub(super) fn source_cached(cache: &Cache, source: &PlannedSource) -> Result<bool, Error> {
    if let PlannedSource::Path(_) = source {
        return Ok(true);
    }
    Ok(single_directory(&source_root(cache, &source.digest()?))?.is_some())
}

/// The source tree of a planned source, fetched, verified and unpacked into
/// the cache if it is not a local directory; its outcome is recorded
/// against its `source` node (keyed by its digest).
pub(super) fn materialize(
    context: &ResolveContext,
    source: &PlannedSource,
    outcomes: &Outcomes,
) -> Result<PathBuf, Error> {
    let files: Vec<(SourceFile, String)> = match source {
        PlannedSource::Path(path) => return Ok(path.clone()),
        PlannedSource::Debian(package) => package
            .files
            .iter()
            .map(|file| {
                (
                    file.clone(),
                    source_file_url(
                        &context.sources.get(package.origin).repository.url,
                        &package.directory,
                        &file.name,
                    ),
                )
            })
            .collect(),
        PlannedSource::Url { url, sha256 } => {
            let name = url
                .rsplit('/')
                .next()
                .filter(|name| !name.is_empty())
                .unwrap_or("source.tar.gz")
                .to_owned();
            vec![(
                SourceFile {
                    name,
                    size: 0,
                    sha256: *sha256,
                },
                url.clone(),
            )]
        }
    };
    let digest = source.digest()?;
    let cache = context.cache;
    let start = Instant::now();
    let mut bytes = 0;
    let (root, origin) = cache.get_or_build_tree(
        Bucket::Sources,
        &digest,
        EntryMeta::any(),
        |work| -> Result<(), Error> {
            let mut local = Vec::new();
            for (file, url) in files {
                let size = (file.size > 0).then_some(file.size);
                let (path, _, fetched) = cache.fetch_by_digest(
                    context.http,
                    &[url],
                    &file.sha256,
                    size,
                    &file.name,
                    context.reporter,
                )?;
                bytes += fetched;
                local.push((file, path));
            }
            // Only .orig/.debian/native tarballs are unpacked; the .dsc is
            // verified by digest like the rest, and not needed for the tree.
            local.retain(|(file, _)| !file.name.ends_with(".dsc"));
            unpack_source(&local, work).map_err(|error| Error::Source {
                what: source.describe(),
                source: error,
            })?;
            if single_directory(work)?.is_none() {
                return Err(Error::Target {
                    target: source.describe(),
                    message: "unpacking gave no single source tree".to_owned(),
                });
            }
            Ok(())
        },
    )?;
    let outcome = match origin {
        TreeOrigin::Built => NodeOutcome::new(Outcome::Downloaded)
            .with_bytes(bytes)
            .with_seconds(start.elapsed().as_secs_f64()),
        TreeOrigin::Local | TreeOrigin::Unpacked => NodeOutcome::new(Outcome::Local),
    };
    outcomes.record(NodeKind::Source, &digest, outcome);
    single_directory(&root)?.ok_or_else(|| Error::Target {
        target: source.describe(),
        message: format!("unpacking gave no source tree in {}", root.display()),
    })
}

/// The one directory inside `root` (where [`unpack_source`] put the tree).
fn single_directory(root: &Path) -> Result<Option<PathBuf>, Error> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(root)(source)),
    };
    let directories: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    Ok(match directories.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// sha256 over a source tree: every file's relative path, kind, executable
/// bit and content, in sorted order. Build outputs (`target/`, `result/`),
/// VCS metadata and the directories `excluded` are left out.
pub fn source_digest(root: &Path, excluded: &[PathBuf]) -> Result<Sha256Digest, Error> {
    let mut files = Vec::new();
    let excluded: Vec<PathBuf> = excluded
        .iter()
        .map(|path| fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
        .collect();
    let canonical_root = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    walk(root, root, &canonical_root, &excluded, &mut files)?;
    files.sort();
    let mut hasher = Hasher::new();
    for relative in files {
        let path = root.join(&relative);
        let metadata = fs::symlink_metadata(&path).map_err(io_error(&path))?;
        let name = relative.to_string_lossy();
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        if metadata.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(io_error(&path))?;
            hasher.update(b"L");
            hasher.update(target.to_string_lossy().as_bytes());
        } else {
            use std::os::unix::fs::PermissionsExt;
            let executable = metadata.permissions().mode() & 0o111 != 0;
            hasher.update(if executable { b"X" } else { b"F" });
            // Each file is hashed while streaming; its digest and size go
            // into the tree's hash.
            let file = fs::File::open(&path).map_err(io_error(&path))?;
            let mut reader = crate::hash::HashingReader::new(file);
            std::io::copy(&mut reader, &mut std::io::sink()).map_err(io_error(&path))?;
            let (digest, size) = reader.finish();
            hasher.update(&size.to_le_bytes());
            hasher.update(&digest.0);
        }
    }
    Ok(hasher.finish().0)
}

fn walk(
    root: &Path,
    directory: &Path,
    canonical_root: &Path,
    excluded: &[PathBuf],
    files: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    for entry in fs::read_dir(directory).map_err(io_error(directory))? {
        let entry = entry.map_err(io_error(directory))?;
        let path = entry.path();
        let name = entry.file_name();
        let kind = entry.file_type().map_err(io_error(&path))?;
        if kind.is_dir() {
            if directory == root && (name == "target" || name == "result") || name == ".git" {
                continue;
            }
            let relative = path.strip_prefix(root).expect("walk stays under root");
            if excluded.contains(&canonical_root.join(relative)) {
                continue;
            }
            walk(root, &path, canonical_root, excluded, files)?;
        } else {
            files.push(
                path.strip_prefix(root)
                    .expect("walk stays under root")
                    .to_owned(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_digest_ignores_build_outputs_and_sees_every_change() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/main.rs"), "fn main() {}").unwrap();
        let first = source_digest(dir.path(), &[]).unwrap();
        fs::create_dir_all(dir.path().join("target/release")).unwrap();
        fs::write(dir.path().join("target/release/x"), "binary").unwrap();
        assert_eq!(source_digest(dir.path(), &[]).unwrap(), first);
        fs::write(dir.path().join("src/main.rs"), "fn main() { }").unwrap();
        assert_ne!(source_digest(dir.path(), &[]).unwrap(), first);
        fs::write(dir.path().join("src/main.rs"), "fn main() {}").unwrap();
        assert_eq!(source_digest(dir.path(), &[]).unwrap(), first);
        fs::rename(
            dir.path().join("src/main.rs"),
            dir.path().join("src/lib.rs"),
        )
        .unwrap();
        assert_ne!(source_digest(dir.path(), &[]).unwrap(), first);
    }

    #[test]
    fn an_output_directory_inside_the_project_is_not_part_of_its_source() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/main.rs"), "fn main() {}").unwrap();
        let out = dir.path().join("out");
        let before = source_digest(dir.path(), std::slice::from_ref(&out)).unwrap();
        fs::create_dir_all(out.join("oci")).unwrap();
        fs::write(out.join("aarch64-linux.tar"), "an image").unwrap();
        assert_eq!(
            source_digest(dir.path(), std::slice::from_ref(&out)).unwrap(),
            before
        );
        assert_ne!(source_digest(dir.path(), &[]).unwrap(), before);
    }
}
