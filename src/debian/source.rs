//! Debian source packages, found through the signed `Sources` index: the
//! chain of trust is InRelease signature → `Sources` digest (from the signed
//! Release, [`sources_index_path`]) → the digest of every file of the
//! package (`Checksums-Sha256`, [`find_source`]). The caller fetches each
//! file by that digest (`Cache::fetch_verified`, [`source_file_url`]) and
//! hands the verified local copies to [`unpack_source`], which lays out the
//! source tree as `dpkg-source -x` would: for `3.0 (quilt)` the upstream
//! `.orig.tar.*` with its single top-level directory stripped (additional
//! `.orig-<component>.tar.*` tarballs go into `<component>/`), then the
//! `.debian.tar.*` as `debian/`, then the quilt patches of
//! `debian/patches/debian.series` (else `debian/patches/series`) applied in
//! order with the `patch` program, without fuzz; for `1.0` and
//! `3.0 (native)` the one tarball. A `1.0` `.diff.gz` is refused. Entries
//! are written with the safety rules of [`crate::debian::unpack`]: no `..`,
//! nothing written through a symlink; a series entry must name a file inside
//! `debian/patches/`, and `patch` itself refuses `..` and symlinks. Files
//! the patches change all get one modification time, one second after the
//! newest file of the unpacked tree, so that `make` sees them as newer than
//! what they were generated from, as after `dpkg-source -x` (no `.pc/`
//! directory is written). Tarballs may be gzip, xz, lzma, zstd, bzip2
//! (through the `bzip2` program) or uncompressed.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::debian::control::{ControlError, ParagraphReader};
use crate::debian::release::{FileHash, Release};
use crate::debian::unpack::{UnpackError, unpack_tar};
use crate::debian::version::Version;
use crate::hash::Sha256Digest;

/// Errors from reading a `Sources` index and unpacking a source package.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read the Sources index {origin}")]
    Index {
        origin: String,
        #[source]
        source: ControlError,
    },
    #[error("cannot open the Sources index {}", path.display())]
    OpenIndex {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{origin}, line {line}: source package {package}: {reason}")]
    Malformed {
        origin: String,
        package: String,
        line: usize,
        reason: String,
    },
    #[error("the source package files {} contain no {what}", display_names(.files))]
    MissingFile { files: Vec<String>, what: String },
    #[error("the source package files {} hold {reason}", display_names(.files))]
    Unsupported { files: Vec<String>, reason: String },
    #[error("{}: compression not understood: {reason}", path.display())]
    Compression { path: PathBuf, reason: String },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unpack {}", archive.display())]
    Unpack {
        archive: PathBuf,
        #[source]
        source: UnpackError,
    },
    #[error("{}: {reason}", archive.display())]
    Layout { archive: PathBuf, reason: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("source package {package}: {series}: {reason}")]
    Series {
        package: String,
        series: String,
        reason: String,
    },
    #[error(
        "source package {package}: cannot run the `patch` program to apply {patch}; install it (`apt-get install patch`)"
    )]
    PatchProgram {
        package: String,
        patch: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "source package {package}: the quilt patch debian/patches/{patch} does not apply ({status}); patch said:\n{output}\n\
         It is applied as `dpkg-source -x` applies it (no fuzz). If `dpkg-source -x` unpacks this package, \
         please report an xbuild bug, and meanwhile build from that tree with `source = {{ path = \"…\" }}`; \
         if it does not, the package itself is broken"
    )]
    Patch {
        package: String,
        patch: String,
        status: String,
        output: String,
    },
}

fn display_names(names: &[String]) -> String {
    names.join(", ")
}

/// One file of a source package, as `Checksums-Sha256` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// A plain file name (no `/`), safe to join to a directory.
    pub name: String,
    pub size: u64,
    pub sha256: Sha256Digest,
}

impl SourceFile {
    /// The size and digest, as `Cache::fetch_verified` wants them.
    pub fn hash(&self) -> FileHash {
        FileHash {
            digest: self.sha256,
            size: self.size,
        }
    }
}

/// One stanza of a `Sources` index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourcePackage {
    pub name: String,
    pub version: String,
    /// The pool directory, relative to the repository URL
    /// (`pool/main/h/hello`); it never holds `..`.
    pub directory: String,
    /// Every file of the package (the `.dsc` included), from
    /// `Checksums-Sha256`.
    pub files: Vec<SourceFile>,
    /// `3.0 (quilt)`, `3.0 (native)` or `1.0`.
    pub format: String,
    /// The package source it was found in (its position in the list).
    #[serde(default)]
    pub origin: usize,
}

/// The `Sources` index of `component` that the signed Release lists, with
/// its digest: `Sources.gz`, else `Sources.xz`, else the plain file.
pub fn sources_index_path(release: &Release, component: &str) -> Option<(String, FileHash)> {
    ["Sources.gz", "Sources.xz", "Sources"]
        .iter()
        .find_map(|name| {
            let path = format!("{component}/source/{name}");
            release.sha256.get(&path).map(|hash| (path, *hash))
        })
}

/// The URL of `file` of a source package in `directory` of the repository
/// at `repository_url` (no trailing slash needed).
pub fn source_file_url(repository_url: &str, directory: &str, file: &str) -> String {
    format!(
        "{}/{}/{}",
        repository_url.trim_end_matches('/'),
        directory.trim_matches('/'),
        file
    )
}

/// Finds source package `name` in a `Sources` index, streaming; when the
/// index lists it several times, the highest version wins. `origin` names
/// the index in errors.
pub fn find_source<R: BufRead>(
    index: R,
    origin: &str,
    name: &str,
) -> Result<Option<SourcePackage>, SourceError> {
    let mut best: Option<(Version, SourcePackage)> = None;
    for item in ParagraphReader::new(index, origin) {
        let (paragraph, line) = item.map_err(|source| SourceError::Index {
            origin: origin.to_owned(),
            source,
        })?;
        if paragraph.get("Package") != Some(name) {
            continue;
        }
        let malformed = |reason: String| SourceError::Malformed {
            origin: origin.to_owned(),
            package: name.to_owned(),
            line,
            reason,
        };
        let field = |field: &str| {
            paragraph
                .get(field)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| malformed(format!("it has no {field} field")))
        };
        let version_text = field("Version")?;
        let version: Version = version_text
            .parse()
            .map_err(|error| malformed(format!("bad version {version_text:?}: {error}")))?;
        if best.as_ref().is_some_and(|(known, _)| *known >= version) {
            continue;
        }
        let directory = field("Directory")?.trim_matches('/').to_owned();
        if directory
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(malformed(format!("unsafe Directory {directory:?}")));
        }
        let files = parse_checksums(field("Checksums-Sha256")?).map_err(malformed)?;
        // A stanza without a Format field is the old 1.0 format.
        let format = paragraph
            .get("Format")
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .unwrap_or("1.0")
            .to_owned();
        best = Some((
            version,
            SourcePackage {
                name: name.to_owned(),
                version: version_text.to_owned(),
                directory,
                files,
                format,
                origin: 0,
            },
        ));
    }
    Ok(best.map(|(_, package)| package))
}

/// Opens a `Sources` index file (for example a cached blob), decompressing
/// according to the name it has in the Release (`main/source/Sources.xz`),
/// and runs [`find_source`] over it.
pub fn find_source_in_file(
    path: &Path,
    index_path: &str,
    name: &str,
) -> Result<Option<SourcePackage>, SourceError> {
    let file = fs_err::File::open(path).map_err(|source| SourceError::OpenIndex {
        path: path.to_owned(),
        source,
    })?;
    let raw = BufReader::with_capacity(256 * 1024, file);
    let decoded: Box<dyn Read> = if index_path.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(raw))
    } else if index_path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    find_source(
        BufReader::with_capacity(256 * 1024, decoded),
        index_path,
        name,
    )
}

/// Parses `Checksums-Sha256` lines: `<sha256> <size> <name>`.
fn parse_checksums(value: &str) -> Result<Vec<SourceFile>, String> {
    let mut files = Vec::new();
    for line in value.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [digest, size, name] = parts[..] else {
            return Err(format!("bad Checksums-Sha256 line {line:?}"));
        };
        let sha256 = Sha256Digest::parse(digest)
            .ok_or_else(|| format!("bad sha256 {digest:?} in Checksums-Sha256"))?;
        let size = size
            .parse()
            .map_err(|_| format!("bad size {size:?} in Checksums-Sha256"))?;
        if name.contains('/') || name == "." || name == ".." || name.contains('\0') {
            return Err(format!("unsafe file name {name:?} in Checksums-Sha256"));
        }
        files.push(SourceFile {
            name: name.to_owned(),
            size,
            sha256,
        });
    }
    if files.is_empty() {
        return Err("Checksums-Sha256 lists no file".into());
    }
    Ok(files)
}

/// What a file of a source package is, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// `<name>_<upstream>.orig.tar.<ext>`.
    Orig,
    /// `<name>_<upstream>.orig-<component>.tar.<ext>`.
    OrigComponent(String),
    /// `<name>_<version>.debian.tar.<ext>`.
    DebianTar,
    /// `<name>_<version>.diff.gz` (format 1.0, non-native).
    Diff,
    /// `<name>_<version>.tar.<ext>` (native).
    Native,
    /// `.dsc`, signatures (`.asc`) and anything else not unpacked.
    Other,
}

/// The part of a tarball name before `.tar` or `.tar.<ext>`.
fn tar_stem(name: &str) -> Option<&str> {
    let (stem, extension) = name.rsplit_once(".tar")?;
    matches!(
        extension,
        "" | ".gz" | ".xz" | ".bz2" | ".lzma" | ".zst" | ".zstd"
    )
    .then_some(stem)
}

fn role(name: &str) -> Role {
    if name.ends_with(".diff.gz") {
        return Role::Diff;
    }
    let Some(stem) = tar_stem(name) else {
        return Role::Other;
    };
    if stem.ends_with(".orig") {
        Role::Orig
    } else if let Some((_, component)) = stem.rsplit_once(".orig-") {
        Role::OrigComponent(component.to_owned())
    } else if stem.ends_with(".debian") {
        Role::DebianTar
    } else {
        Role::Native
    }
}

/// `hello_2.10.orig.tar.gz` → `hello-2.10`, the directory name
/// `dpkg-source -x` would use (without the Debian revision).
fn tree_name(file: &str) -> String {
    let stem = tar_stem(file).unwrap_or(file);
    let stem = stem.strip_suffix(".orig").unwrap_or(stem);
    let (package, version) = stem.split_once('_').unwrap_or((stem, ""));
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    let name = if version.is_empty() {
        package.to_owned()
    } else {
        format!("{package}-{version}")
    };
    name.replace(['/', '\0'], "_")
}

/// Unpacks a source package from verified local copies of its files into a
/// new directory under `dest` (created if missing), named like
/// `dpkg-source -x` names it (`hello-2.10`), and returns that tree.
///
/// The layout is decided by the files given: a `.debian.tar.*` means
/// `3.0 (quilt)` (an `.orig.tar.*` is then required), one other `.tar.*`
/// means `1.0` or `3.0 (native)`. A `1.0` package with a `.diff.gz` is
/// refused. The quilt patches of a `3.0 (quilt)` package are applied (see
/// the module documentation); one that does not apply is an error. The tree
/// is built in a temporary directory beside it and renamed into place, so it
/// is either complete or absent.
pub fn unpack_source(files: &[(SourceFile, PathBuf)], dest: &Path) -> Result<PathBuf, SourceError> {
    let names: Vec<String> = files.iter().map(|(file, _)| file.name.clone()).collect();
    let with_role = |wanted: &Role| -> Vec<&(SourceFile, PathBuf)> {
        files
            .iter()
            .filter(|(file, _)| role(&file.name) == *wanted)
            .collect()
    };
    let orig = with_role(&Role::Orig);
    let debian = with_role(&Role::DebianTar);
    let native = with_role(&Role::Native);
    let diff = with_role(&Role::Diff);
    let components: Vec<(String, &(SourceFile, PathBuf))> = files
        .iter()
        .filter_map(|item| match role(&item.0.name) {
            Role::OrigComponent(component) => Some((component, item)),
            _ => None,
        })
        .collect();
    let unsupported = |reason: &str| SourceError::Unsupported {
        files: names.clone(),
        reason: reason.to_owned(),
    };
    if !diff.is_empty() {
        return Err(unsupported(
            "a format 1.0 .diff.gz, which xbuild does not apply",
        ));
    }
    let (main, debian) = match (orig.as_slice(), debian.as_slice(), native.as_slice()) {
        ([orig], [debian], []) => (*orig, Some(*debian)),
        ([], [], [native]) if components.is_empty() => (*native, None),
        ([], [_], _) => {
            return Err(SourceError::MissingFile {
                files: names,
                what: "upstream tarball (.orig.tar.*)".into(),
            });
        }
        ([_], [], _) => {
            return Err(SourceError::MissingFile {
                files: names,
                what: "Debian tarball (.debian.tar.*)".into(),
            });
        }
        ([], [], []) => {
            return Err(SourceError::MissingFile {
                files: names,
                what: "tarball".into(),
            });
        }
        _ => return Err(unsupported("more than one main tarball")),
    };

    fs_err::create_dir_all(dest).map_err(|source| write_error(dest, source))?;
    let tree = dest.join(tree_name(&main.0.name));
    if fs_err::symlink_metadata(&tree).is_ok() {
        return Err(SourceError::Layout {
            archive: main.1.clone(),
            reason: format!("the destination {} already exists", tree.display()),
        });
    }
    let work = tempfile::Builder::new()
        .prefix(".xbuild-source-")
        .tempdir_in(dest)
        .map_err(|source| write_error(dest, source))?;

    let root = work.path().join("root");
    let top = unpack_stripped(main, &root, work.path().join("main"))?;
    for (component, item) in &components {
        let path = &item.1;
        if component.is_empty() || component.contains(['/', '\0']) || component == ".." {
            return Err(SourceError::Layout {
                archive: path.clone(),
                reason: format!("unsafe component name {component:?}"),
            });
        }
        let place = top.join(component);
        remove_any(&place)?;
        unpack_stripped(item, &place, work.path().join(format!("orig-{component}")))?;
    }
    if let Some((file, path)) = debian {
        let scratch = work.path().join("debian");
        unpack_file(path, &file.name, &scratch)?;
        let mut entries = read_names(&scratch)?;
        entries.sort();
        let metadata = fs_err::symlink_metadata(scratch.join("debian"));
        if entries != ["debian"] || !metadata.is_ok_and(|m| m.is_dir()) {
            return Err(SourceError::Layout {
                archive: path.clone(),
                reason: format!(
                    "a Debian tarball must hold only the directory debian/, not {}",
                    entries.join(", ")
                ),
            });
        }
        // As dpkg-source does: an upstream debian/ is replaced.
        let place = top.join("debian");
        remove_any(&place)?;
        fs_err::rename(scratch.join("debian"), &place)
            .map_err(|source| write_error(&place, source))?;
        apply_quilt_series(&top, &package_label(&file.name))?;
    }
    fs_err::rename(&top, &tree).map_err(|source| write_error(&tree, source))?;
    Ok(tree)
}

/// `hello_2.10-3.debian.tar.xz` → `hello 2.10-3`, for errors.
fn package_label(debian_tarball: &str) -> String {
    let stem = tar_stem(debian_tarball).unwrap_or(debian_tarball);
    let stem = stem.strip_suffix(".debian").unwrap_or(stem);
    stem.replacen('_', " ", 1)
}

/// The series files `dpkg-source` reads, first found wins: the vendor's
/// (xbuild's vendor is Debian), then the plain one.
const SERIES_FILES: [&str; 2] = ["debian.series", "series"];

/// One patch of a quilt series: its path under `debian/patches/` and how
/// many leading components `patch` strips from the file names in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeriesEntry {
    patch: String,
    strip: u32,
}

/// Parses a quilt series file. Blank lines and lines starting with `#` are
/// skipped; otherwise a line is a patch path, then options up to the end
/// of the line or a `#` after white space. The one option understood is
/// quilt's `-pN` (default `-p1`; `-pab` is `-p1`); any other is refused
/// rather than ignored. A path must stay inside `debian/patches/`.
fn parse_series(text: &str) -> Result<Vec<SeriesEntry>, String> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let patch = words.next().expect("the line is not blank");
        let at = |reason: String| format!("line {}: {reason}", index + 1);
        if Path::new(patch)
            .components()
            .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir))
        {
            return Err(at(format!(
                "the patch {patch:?} is outside debian/patches/"
            )));
        }
        let mut strip = 1;
        for option in words.take_while(|word| !word.starts_with('#')) {
            strip = match option.strip_prefix("-p") {
                Some("ab") => Some(1),
                Some(digits) => digits.parse().ok(),
                None => None,
            }
            .ok_or_else(|| at(format!("unsupported option {option:?} (only -pN is)")))?;
        }
        entries.push(SeriesEntry {
            patch: patch.to_owned(),
            strip,
        });
    }
    Ok(entries)
}

/// Applies the quilt series of the `3.0 (quilt)` tree at `root` (with its
/// `debian/` in place), as `dpkg-source -x` does: each patch in order, with
/// `patch` run in `root`, no fuzz, no backups, no reject files. No series
/// file means no patches. Files the patches change or create then get one
/// modification time, one second after the newest file of the tree before
/// patching. Returns how many patches were applied.
fn apply_quilt_series(root: &Path, package: &str) -> Result<usize, SourceError> {
    let patches = root.join("debian").join("patches");
    let Some((series_name, series_path)) = SERIES_FILES
        .iter()
        .map(|name| (format!("debian/patches/{name}"), patches.join(name)))
        .find(|(_, path)| fs_err::symlink_metadata(path).is_ok())
    else {
        return Ok(0);
    };
    let series_error = |reason: String| SourceError::Series {
        package: package.to_owned(),
        series: series_name.clone(),
        reason,
    };
    // A symlink in the package must not make xbuild read a host file.
    let inside = |path: &Path, within: &Path| -> Result<PathBuf, SourceError> {
        let resolve = |path: &Path| {
            std::fs::canonicalize(path)
                .map_err(|error| series_error(format!("{}: {error}", path.display())))
        };
        let (resolved, within) = (resolve(path)?, resolve(within)?);
        if !resolved.starts_with(&within) {
            return Err(series_error(format!(
                "{} leads outside {}",
                path.display(),
                within.display()
            )));
        }
        Ok(resolved)
    };
    let patches = inside(&patches, root)?;
    let series_path = inside(&series_path, &patches)?;
    let text = fs_err::read_to_string(&series_path).map_err(|source| SourceError::Read {
        path: series_path.clone(),
        source,
    })?;
    let entries = parse_series(&text).map_err(series_error)?;
    if entries.is_empty() {
        return Ok(0);
    }
    let before = file_states(root)?;
    for entry in &entries {
        let patch_file = inside(&patches.join(&entry.patch), &patches)?;
        let output = Command::new("patch")
            .args(["-t", "-F", "0", "-N", "-u", "-E", "-V", "never"])
            .args(["--no-backup-if-mismatch", "--reject-file=-"])
            .arg(format!("-p{}", entry.strip))
            .arg("-i")
            .arg(&patch_file)
            .current_dir(root)
            .env("LC_ALL", "C")
            .env("PATCH_GET", "0")
            .env_remove("POSIXLY_CORRECT")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SourceError::PatchProgram {
                package: package.to_owned(),
                patch: entry.patch.clone(),
                source,
            })?;
        if !output.status.success() {
            // Its last 50 lines: enough to see which hunks failed.
            let said = [output.stdout, output.stderr].concat();
            let said = String::from_utf8_lossy(&said);
            let lines: Vec<&str> = said.trim().lines().collect();
            return Err(SourceError::Patch {
                package: package.to_owned(),
                patch: entry.patch.clone(),
                status: output.status.to_string(),
                output: lines[lines.len().saturating_sub(50)..].join("\n"),
            });
        }
    }
    let newest = before.values().map(|(_, modified)| *modified).max();
    let stamp = newest.unwrap_or(SystemTime::UNIX_EPOCH) + Duration::from_secs(1);
    for (path, state) in file_states(root)? {
        if before.get(&path) != Some(&state) {
            fs_err::File::open(&path)
                .and_then(|file| file.file().set_modified(stamp))
                .map_err(|source| write_error(&path, source))?;
        }
    }
    Ok(entries.len())
}

/// Every regular file under `root` (symlinks are not followed), with its
/// inode and modification time: `patch` replaces a file it changes, so
/// either differs afterwards.
fn file_states(root: &Path) -> Result<HashMap<PathBuf, (u64, SystemTime)>, SourceError> {
    let mut states = HashMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        let read = |source| SourceError::Read {
            path: directory.clone(),
            source,
        };
        for entry in fs_err::read_dir(&directory).map_err(read)? {
            let path = entry.map_err(read)?.path();
            let metadata = fs_err::symlink_metadata(&path).map_err(read)?;
            if metadata.is_dir() {
                pending.push(path);
            } else if metadata.is_file() {
                let modified = metadata.modified().map_err(read)?;
                states.insert(path, (metadata.ino(), modified));
            }
        }
    }
    Ok(states)
}

/// Unpacks a tarball into `scratch` and moves its content to
/// `place`: its single top-level directory when it has exactly one (the
/// usual `name-version/`), else everything. Returns `place`.
fn unpack_stripped(
    (file, archive): &(SourceFile, PathBuf),
    place: &Path,
    scratch: PathBuf,
) -> Result<PathBuf, SourceError> {
    unpack_file(archive, &file.name, &scratch)?;
    let entries = read_names(&scratch)?;
    let single = match entries.as_slice() {
        [only] => {
            let path = scratch.join(only);
            fs_err::symlink_metadata(&path)
                .is_ok_and(|metadata| metadata.is_dir())
                .then_some(path)
        }
        _ => None,
    };
    let content = single.unwrap_or(scratch);
    if let Some(parent) = place.parent() {
        fs_err::create_dir_all(parent).map_err(|source| write_error(parent, source))?;
    }
    fs_err::rename(&content, place).map_err(|source| write_error(place, source))?;
    Ok(place.to_owned())
}

/// Names of the entries of a directory.
fn read_names(directory: &Path) -> Result<Vec<String>, SourceError> {
    let read = |source| SourceError::Read {
        path: directory.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs_err::read_dir(directory).map_err(read)? {
        names.push(
            entry
                .map_err(read)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(names)
}

/// Removes a file, symlink or directory tree at `path`, if any (a symlink is
/// removed, never followed).
fn remove_any(path: &Path) -> Result<(), SourceError> {
    match fs_err::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            fs_err::remove_dir_all(path).map_err(|source| write_error(path, source))
        }
        Ok(_) => fs_err::remove_file(path).map_err(|source| write_error(path, source)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(write_error(path, source)),
    }
}

fn write_error(path: &Path, source: io::Error) -> SourceError {
    SourceError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Extracts the tarball at `archive` into `dest`; its compression is told
/// by `name`, the file's name in the source package (`archive` may be a
/// cache blob named by its digest).
fn unpack_file(archive: &Path, name: &str, dest: &Path) -> Result<(), SourceError> {
    let read_error = |source| SourceError::Read {
        path: archive.to_owned(),
        source,
    };
    let file = fs_err::File::open(archive).map_err(read_error)?;
    let raw = BufReader::with_capacity(256 * 1024, file);
    let mut child: Option<Child> = None;
    let reader: Box<dyn Read> = if name.ends_with(".tar.gz") {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else if name.ends_with(".tar.xz") {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(raw))
    } else if name.ends_with(".tar.lzma") {
        let stream = xz2::stream::Stream::new_lzma_decoder(u64::MAX).map_err(|error| {
            SourceError::Compression {
                path: archive.to_owned(),
                reason: error.to_string(),
            }
        })?;
        Box::new(xz2::read::XzDecoder::new_stream(raw, stream))
    } else if name.ends_with(".tar.zst") || name.ends_with(".tar.zstd") {
        Box::new(zstd::stream::read::Decoder::with_buffer(raw).map_err(read_error)?)
    } else if name.ends_with(".tar.bz2") {
        let mut spawned = Command::new("bzip2")
            .arg("-dc")
            .stdin(Stdio::from(raw.into_inner().into_parts().0))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| SourceError::Compression {
                path: archive.to_owned(),
                reason: format!("bzip2 tarballs need the `bzip2` program: {error}"),
            })?;
        let stdout = spawned.stdout.take().expect("stdout is piped");
        child = Some(spawned);
        Box::new(DrainOnDrop(stdout))
    } else if name.ends_with(".tar") {
        Box::new(raw)
    } else {
        return Err(SourceError::Compression {
            path: archive.to_owned(),
            reason: "not a .tar, .tar.gz, .tar.xz, .tar.bz2, .tar.lzma or .tar.zst file".into(),
        });
    };
    let result = unpack_tar(tar::Archive::new(reader), dest, archive).map_err(|source| {
        SourceError::Unpack {
            archive: archive.to_owned(),
            source,
        }
    });
    if let Some(child) = child {
        let output = child.wait_with_output().map_err(read_error)?;
        if !output.status.success() {
            return Err(SourceError::Compression {
                path: archive.to_owned(),
                reason: format!(
                    "bzip2 -dc failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
    }
    result.map(|_| ())
}

/// Reads its pipe to the end when dropped, so that the program writing it
/// (bzip2, with a tarball's trailing padding still to write) is not killed
/// by SIGPIPE after the tar reader stopped at the end-of-archive marker.
struct DrainOnDrop<R: Read>(R);

impl<R: Read> Read for DrainOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Drop for DrainOnDrop<R> {
    fn drop(&mut self) {
        let _ = io::copy(&mut self.0, &mut io::sink());
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
