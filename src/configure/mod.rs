//! Native configuration: the effects of maintainer scripts that images
//! need, made at build time into one directory — the target's configure
//! layer, placed after its package layers and before its `[[build]]`
//! layers — from the target's `.deb` files and the manifest, never by
//! running target code.
//!
//! [`configure`] reads each package's control member (its maintainer
//! scripts) and data member (the few files an effect needs, and the list of
//! paths the image gets), then makes each effect, one module each:
//!
//! - [`accounts`]: `/etc/passwd`, `/etc/group`, homes, `[image] user`;
//! - [`os_release`]: `/usr/lib/os-release` when no package ships one;
//! - [`ca_certificates`]: the CA bundle when `ca-certificates` is there;
//! - `/tmp` (mode 1777) and `/root` (0700).
//!
//! Alternatives (`update-alternatives` calls in postinst scripts) plug in
//! at [`alternatives`]: it gets every package's postinst text and the
//! image's paths after the small-image filter.

pub mod accounts;
pub mod alternatives;
pub mod ca_certificates;
pub mod os_release;

use crate::debian::deb::{DebArchive, DebError};
use crate::image::filter::{EntryKind, PathFilter};
use crate::manifest::{AccountSpec, CaCertificate, TextPosition};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use os_release::SuiteRelease;

/// Version of what the configure layer holds and how: part of its key.
pub const FORMAT: &str = "configure-v2";

/// Owner (uid, gid) of paths of the layer not owned by root, by path
/// relative to its root.
pub type Owners = BTreeMap<PathBuf, (u32, u32)>;

/// Base-passwd's master files, in its data.
const PASSWD_MASTER: &str = "usr/share/base-passwd/passwd.master";
const GROUP_MASTER: &str = "usr/share/base-passwd/group.master";
/// Where packages (base-files) put os-release.
const OS_RELEASE_PATHS: [&str; 2] = ["usr/lib/os-release", "etc/os-release"];
/// Largest data file read into memory (a certificate, a master file).
const MAXIMUM_DATA_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// Everything that can go wrong while configuring.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error("cannot read the .deb of package {package}")]
    Deb {
        package: String,
        #[source]
        source: DebError,
    },
    #[error("package {package}: cannot read `{path}` from {}", deb.display())]
    ReadData {
        package: String,
        deb: PathBuf,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("package {package}: `{path}` is larger than {MAXIMUM_DATA_FILE_SIZE} bytes")]
    TooLarge { package: String, path: String },
    #[error("package {package}: `{path}` is not UTF-8 text")]
    NotText { package: String, path: String },
    #[error("{}:{}:{}: {message}", manifest.display(), position.line, position.column)]
    Account {
        manifest: PathBuf,
        position: TextPosition,
        message: String,
    },
    #[error("{}{}: {message}", manifest.display(), position.map(|p| format!(":{}:{}", p.line, p.column)).unwrap_or_default())]
    User {
        manifest: PathBuf,
        position: Option<TextPosition>,
        message: String,
    },
    #[error("cannot write {} for the configure layer", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One package of the target, in image order.
#[derive(Debug, Clone, Copy)]
pub struct ConfigurePackage<'a> {
    pub name: &'a str,
    pub deb: &'a Path,
}

/// The manifest settings configuring reads.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The manifest's path, for errors.
    pub manifest: &'a Path,
    pub accounts: &'a [AccountSpec],
    /// `[image] user` and where it is written.
    pub user: Option<(&'a str, Option<TextPosition>)>,
    pub ca_certificates: &'a [CaCertificate],
    /// What package layers leave out: the image's paths are the ones kept.
    pub filter: &'a PathFilter,
}

/// A maintainer script not run, and what of it was done natively.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScriptNote {
    pub package: String,
    pub script: String,
    /// Effects done natively (`CA bundle done`); empty for none.
    pub done: Vec<String>,
}

/// What the alternatives hook gets: each package's postinst text, and
/// every path the image has (after the small-image filter), normalised
/// (no leading `/`).
#[derive(Debug, Clone, Default)]
pub struct AlternativesInput {
    /// (package, postinst text), in image order.
    pub postinsts: Vec<(String, String)>,
    pub image_paths: BTreeSet<String>,
}

/// What [`configure`] made besides the files.
#[derive(Debug, Clone, Default)]
pub struct Configured {
    pub owners: Owners,
    /// Every maintainer script of the packages, in image order.
    pub notes: Vec<ScriptNote>,
}

/// What one package's `.deb` holds that configuring needs.
#[derive(Default)]
struct Scanned {
    scripts: Vec<String>,
    postinst: Option<String>,
    /// Data files read whole, by normalised path.
    files: BTreeMap<String, Vec<u8>>,
}

/// Whether the data file at `path` of `package` is one an effect reads.
fn wanted(package: &str, path: &str) -> bool {
    match package {
        "base-passwd" => path == PASSWD_MASTER || path == GROUP_MASTER,
        "ca-certificates" => path
            .strip_prefix(ca_certificates::CERTIFICATES_DIRECTORY)
            .is_some_and(|rest| rest.starts_with('/') && rest.ends_with(".crt")),
        _ => false,
    }
}

/// A tar path as a layer writes it: no `./` or `/` before, no `/` after.
fn normalise(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_start_matches("./").trim_start_matches('/');
    text.trim_end_matches('/').to_owned()
}

/// Reads what configuring needs of one package, adding its kept paths to
/// `image_paths`.
fn scan(
    package: &ConfigurePackage,
    filter: &PathFilter,
    image_paths: &mut BTreeSet<String>,
) -> Result<Scanned, ConfigureError> {
    let deb_error = |source| ConfigureError::Deb {
        package: package.name.to_owned(),
        source,
    };
    let mut archive = DebArchive::open(package.deb).map_err(deb_error)?;
    let control = archive.control().map_err(deb_error)?;
    let mut scanned = Scanned {
        scripts: control.maintainer_scripts,
        ..Scanned::default()
    };
    if scanned.scripts.iter().any(|script| script == "postinst") {
        let files = archive.control_files(&["postinst"]).map_err(deb_error)?;
        if let Some(bytes) = files.get("postinst") {
            scanned.postinst = Some(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    let read_error = |path: &str, source| ConfigureError::ReadData {
        package: package.name.to_owned(),
        deb: package.deb.to_owned(),
        path: path.to_owned(),
        source,
    };
    let mut data = archive.data().map_err(deb_error)?;
    for entry in data.entries().map_err(|source| read_error("", source))? {
        let mut entry = entry.map_err(|source| read_error("", source))?;
        let path = normalise(&entry.path_bytes());
        if path.is_empty() {
            continue;
        }
        let entry_type = entry.header().entry_type();
        let kind = if entry_type.is_dir() {
            EntryKind::Directory
        } else if entry_type.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        if !filter.leaves_out(path.as_bytes(), kind) {
            image_paths.insert(path.clone());
        }
        if entry_type.is_file() && wanted(package.name, &path) {
            if entry.size() > MAXIMUM_DATA_FILE_SIZE {
                return Err(ConfigureError::TooLarge {
                    package: package.name.to_owned(),
                    path,
                });
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|source| read_error(&path, source))?;
            scanned.files.insert(path, bytes);
        }
    }
    Ok(scanned)
}

fn text_of(package: &str, path: &str, bytes: &[u8]) -> Result<String, ConfigureError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ConfigureError::NotText {
        package: package.to_owned(),
        path: path.to_owned(),
    })
}

/// Makes every effect into `root` (an empty directory) for `packages` (the
/// target's, in image order) from `suite` and `settings`.
pub fn configure(
    root: &Path,
    packages: &[ConfigurePackage],
    suite: &SuiteRelease,
    settings: &Settings,
) -> Result<Configured, ConfigureError> {
    let mut input = AlternativesInput::default();
    let mut scanned: Vec<(&str, Scanned)> = Vec::new();
    for package in packages {
        let found = scan(package, settings.filter, &mut input.image_paths)?;
        if let Some(postinst) = &found.postinst {
            input
                .postinsts
                .push((package.name.to_owned(), postinst.clone()));
        }
        scanned.push((package.name, found));
    }
    let find = |name: &str| {
        scanned
            .iter()
            .find(|(package, _)| *package == name)
            .map(|(_, found)| found)
    };
    let mut configured = Configured::default();
    let mut done: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();

    // Accounts: base-passwd's postinst copies its master files.
    let master = match find("base-passwd") {
        Some(found) => {
            let passwd = found.files.get(PASSWD_MASTER);
            let group = found.files.get(GROUP_MASTER);
            match (passwd, group) {
                (Some(passwd), Some(group)) => Some(accounts::MasterFiles {
                    passwd: text_of("base-passwd", PASSWD_MASTER, passwd)?,
                    group: text_of("base-passwd", GROUP_MASTER, group)?,
                }),
                _ => None,
            }
        }
        None => None,
    };
    let written = accounts::write(
        root,
        master.as_ref(),
        settings.accounts,
        settings.manifest,
        &mut configured.owners,
    )?;
    if master.is_some() {
        done.entry(("base-passwd", "postinst"))
            .or_default()
            .push("/etc/passwd and /etc/group from the master files done".to_owned());
    }
    if let Some((user, position)) = settings.user {
        accounts::check_user(user, position, &written, settings.manifest)?;
    }
    make_dir(&root.join("tmp"), 0o1777)?;

    // os-release, unless a package (base-files) ships it.
    if !OS_RELEASE_PATHS
        .iter()
        .any(|path| input.image_paths.contains(*path))
    {
        os_release::write(root, suite)?;
    }

    // The CA bundle.
    if let Some(found) = find("ca-certificates") {
        let prefix = format!("{}/", ca_certificates::CERTIFICATES_DIRECTORY);
        let packaged: BTreeMap<String, Vec<u8>> = found
            .files
            .iter()
            .filter_map(|(path, bytes)| {
                let relative = path.strip_prefix(&prefix)?;
                Some((relative.to_owned(), bytes.clone()))
            })
            .collect();
        let bundle = ca_certificates::write(root, &packaged, settings.ca_certificates)?;
        let mut effect = format!(
            "/etc/ca-certificates.conf and CA bundle of {} certificates",
            bundle.packaged
        );
        if bundle.local > 0 {
            effect.push_str(&format!(" + {} from [image] ca-certificates", bundle.local));
        }
        effect.push_str(" done (no hash links)");
        done.entry(("ca-certificates", "postinst"))
            .or_default()
            .push(effect);
    }

    for effect in alternatives(root, &input)? {
        done.entry((effect.0, "postinst"))
            .or_default()
            .push(effect.1);
    }

    for (name, found) in &scanned {
        for script in &found.scripts {
            configured.notes.push(ScriptNote {
                package: (*name).to_owned(),
                script: script.clone(),
                done: done.remove(&(*name, script.as_str())).unwrap_or_default(),
            });
        }
    }
    Ok(configured)
}

/// The `update-alternatives --install` calls of the postinst scripts in
/// `input`, done under `root` as update-alternatives does them (links and
/// database), each returned as (package, effect): what was linked, and
/// what was not done and why (a call the parser cannot read for certain,
/// a choice whose path the image lacks) — never guessed.
fn alternatives<'a>(
    root: &Path,
    input: &'a AlternativesInput,
) -> Result<Vec<(&'a str, String)>, ConfigureError> {
    let mut effects = Vec::new();
    let mut installs = Vec::new();
    for (package, script) in &input.postinsts {
        let parsed = alternatives::parse_postinst(package, script);
        for install in parsed.installs {
            installs.push((package.clone(), install));
        }
        for unreadable in parsed.unreadable {
            effects.push((
                package.as_str(),
                format!(
                    "not done: update-alternatives at line {} ({}): {}",
                    unreadable.line, unreadable.reason, unreadable.text
                ),
            ));
        }
        for selection in parsed.selections {
            effects.push((
                package.as_str(),
                format!(
                    "not done: update-alternatives {} at line {}",
                    selection.arguments.join(" "),
                    selection.line
                ),
            ));
        }
    }
    if installs.is_empty() {
        return Ok(effects);
    }
    // The image is merged /usr, the packages' paths are as they ship them:
    // `/bin/x` and `/usr/bin/x` are one file.
    let exists = |path: &str| {
        use crate::image::usrmerge::{MERGED_DIRECTORIES, MergedPath, merged_path};
        let relative = path.trim_start_matches('/');
        let unmerged = relative.strip_prefix("usr/").filter(|rest| {
            MERGED_DIRECTORIES
                .iter()
                .any(|directory| rest.split('/').next() == Some(*directory))
        });
        let merged = match merged_path(relative.as_bytes()) {
            MergedPath::Moved(merged) => Some(String::from_utf8_lossy(&merged).into_owned()),
            _ => None,
        };
        [Some(relative), unmerged, merged.as_deref()]
            .into_iter()
            .flatten()
            .any(|candidate| input.image_paths.contains(candidate))
    };
    let chosen =
        alternatives::apply(root, &installs, &exists).map_err(|source| ConfigureError::Write {
            path: root.join(alternatives::ADMIN_DIRECTORY),
            source,
        })?;
    let package_of = |name: &str| {
        input
            .postinsts
            .iter()
            .find(|(package, _)| package == name)
            .map_or("", |(package, _)| package.as_str())
    };
    for choice in chosen {
        match choice {
            alternatives::Chosen::Linked {
                name,
                package,
                link,
                path,
                slaves,
                ..
            } => effects.push((
                package_of(&package),
                format!(
                    "alternative {name} done: {link} -> {path}{}",
                    if slaves.is_empty() {
                        String::new()
                    } else {
                        format!(" (+{} slave links)", slaves.len())
                    }
                ),
            )),
            alternatives::Chosen::Skipped {
                name,
                package,
                path,
                reason,
            } => effects.push((
                package_of(&package),
                format!("not done: alternative {name} -> {path}: {reason:?}"),
            )),
        }
    }
    Ok(effects)
}

/// Creates `path` (and its parents, mode 0755) with `mode`.
pub(crate) fn make_dir(path: &Path, mode: u32) -> Result<(), ConfigureError> {
    let error = |source| ConfigureError::Write {
        path: path.to_owned(),
        source,
    };
    fs_err::create_dir_all(path).map_err(error)?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(error)
}

/// Writes `contents` at `path` (parents made) with `mode`.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), ConfigureError> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).map_err(|source| ConfigureError::Write {
            path: parent.to_owned(),
            source,
        })?;
    }
    let error = |source| ConfigureError::Write {
        path: path.to_owned(),
        source,
    };
    fs_err::write(path, contents).map_err(error)?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(error)
}

/// A symlink at `path` to `target`, replacing one that is there.
pub(crate) fn symlink(target: &str, path: &Path) -> Result<(), ConfigureError> {
    let _ = fs_err::remove_file(path);
    std::os::unix::fs::symlink(target, path).map_err(|source| ConfigureError::Write {
        path: path.to_owned(),
        source,
    })
}
