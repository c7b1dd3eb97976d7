//! A real, signed Debian binary archive built in a temp dir: `.deb`s made by
//! `dpkg-deb --build --root-owner-group`, `Packages` (plain, `.xz`, `.gz`),
//! a `Release` with a SHA256 section, clear-signed by a real gpg key into
//! `InRelease`, and the public key exported as the keyring.
//!
//! Layout under [`Archive::root`] (what the HTTP server serves):
//!
//! ```text
//! debian/dists/fixture/{Release,InRelease}
//! debian/dists/fixture/main/binary-arm64/Packages{,.xz,.gz}
//! debian/dists/fixture/main/binary-arm64/by-hash/SHA256/<hex>   (with by_hash)
//! debian/pool/main/<prefix>/<name>/<name>_<version>_<arch>.deb
//! keys/archive.gpg  keys/archive.asc  keys/unknown.gpg
//! ```
//!
//! Variants for the tamper tests are either builder options (expired
//! `Valid-Until`, signed by an unknown key) or edits of the served bytes after
//! signing ([`Archive::tamper_packages`], [`Archive::tamper_deb`],
//! [`Archive::break_signature`]).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use super::dates;
use super::gpg::{Signer, keys};
use super::run_ok;

/// The suite, component and architecture every fixture archive uses.
pub const SUITE: &str = "fixture";
pub const COMPONENT: &str = "main";
pub const ARCH: &str = "arm64";
/// Path of the archive under the server root (the repository URL is
/// `http://127.0.0.1:PORT/debian`).
pub const URL_PATH: &str = "debian";
/// mtime of every file in every fixture `.deb` (and of its `ar` members).
pub const DEB_EPOCH: u64 = 1_700_000_000;

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One file placed in a package besides the default ones.
#[derive(Clone, Debug)]
pub struct ExtraFile {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// What one fixture package declares. Every package gets an executable shell
/// script `usr/bin/<name>`, a symlink `usr/bin/<name>-link -> <name>` and a
/// doc `usr/share/doc/<name>/README`.
#[derive(Clone, Debug)]
pub struct DebSpec {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub depends: Option<String>,
    pub pre_depends: Option<String>,
    pub provides: Option<String>,
    pub multi_arch: Option<String>,
    /// `dpkg-deb -Z` value: `xz` (the default), `gzip`, `none`.
    pub compression: String,
    pub extra_files: Vec<ExtraFile>,
    /// Symlinks besides the default one: (path, target).
    pub extra_links: Vec<(String, String)>,
    /// An uncompressed data tarball that replaces the one dpkg-deb made
    /// (see [`super::crafted`]).
    pub data_tar: Option<Vec<u8>>,
}

impl DebSpec {
    pub fn new(name: &str, version: &str, architecture: &str) -> Self {
        DebSpec {
            name: name.to_owned(),
            version: version.to_owned(),
            architecture: architecture.to_owned(),
            depends: None,
            pre_depends: None,
            provides: None,
            multi_arch: None,
            compression: "xz".to_owned(),
            extra_files: Vec::new(),
            extra_links: Vec::new(),
            data_tar: None,
        }
    }

    pub fn with_depends(mut self, depends: &str) -> Self {
        self.depends = Some(depends.to_owned());
        self
    }

    pub fn with_pre_depends(mut self, pre_depends: &str) -> Self {
        self.pre_depends = Some(pre_depends.to_owned());
        self
    }

    pub fn with_provides(mut self, provides: &str) -> Self {
        self.provides = Some(provides.to_owned());
        self
    }

    pub fn with_multi_arch(mut self, multi_arch: &str) -> Self {
        self.multi_arch = Some(multi_arch.to_owned());
        self
    }

    pub fn with_compression(mut self, compression: &str) -> Self {
        self.compression = compression.to_owned();
        self
    }

    pub fn with_file(mut self, path: &str, contents: &[u8], mode: u32) -> Self {
        self.extra_files.push(ExtraFile {
            path: path.trim_start_matches('/').to_owned(),
            contents: contents.to_vec(),
            mode,
        });
        self
    }

    pub fn with_symlink(mut self, path: &str, target: &str) -> Self {
        self.extra_links
            .push((path.trim_start_matches('/').to_owned(), target.to_owned()));
        self
    }

    /// The script `usr/bin/<name>` prints this line.
    pub fn script_output(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    pub fn pool_path(&self) -> String {
        let prefix = if self.name.starts_with("lib") && self.name.len() > 3 {
            &self.name[..4]
        } else {
            &self.name[..1]
        };
        format!(
            "pool/{COMPONENT}/{prefix}/{name}/{name}_{version}_{arch}.deb",
            name = self.name,
            version = self.version,
            arch = self.architecture
        )
    }

    /// The control fields shared by `DEBIAN/control` and the `Packages` entry.
    pub fn control_fields(&self, installed_size_kib: u64) -> String {
        let mut text = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\n\
             Maintainer: xbuild tests <tests@fixture.invalid>\nInstalled-Size: {}\n",
            self.name, self.version, self.architecture, installed_size_kib
        );
        for (field, value) in [
            ("Multi-Arch", &self.multi_arch),
            ("Provides", &self.provides),
            ("Pre-Depends", &self.pre_depends),
            ("Depends", &self.depends),
        ] {
            if let Some(value) = value {
                text.push_str(&format!("{field}: {value}\n"));
            }
        }
        text.push_str("Section: misc\nPriority: optional\n");
        text
    }

    pub fn description(&self) -> String {
        format!(
            "Description: fixture package {}\n Built by the xbuild test suite.\n",
            self.name
        )
    }
}

/// Compressions of `Packages` the archive can carry (and list in `Release`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexCompression {
    Plain,
    Xz,
    Gzip,
}

impl IndexCompression {
    pub fn file_name(self) -> &'static str {
        match self {
            IndexCompression::Plain => "Packages",
            IndexCompression::Xz => "Packages.xz",
            IndexCompression::Gzip => "Packages.gz",
        }
    }

    pub fn compress(self, plain: &[u8]) -> Vec<u8> {
        match self {
            IndexCompression::Plain => plain.to_vec(),
            IndexCompression::Xz => {
                let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 6);
                encoder.write_all(plain).expect("xz compress");
                encoder.finish().expect("xz finish")
            }
            IndexCompression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                encoder.write_all(plain).expect("gzip compress");
                encoder.finish().expect("gzip finish")
            }
        }
    }
}

/// Builds an [`Archive`]. Start from [`ArchiveBuilder::standard`] (the
/// package universe the resolver tests use) or [`ArchiveBuilder::empty`].
pub struct ArchiveBuilder {
    packages: Vec<DebSpec>,
    compressions: Vec<IndexCompression>,
    by_hash: bool,
    valid_until_seconds: Option<i64>,
    signer: Signer,
}

/// The standard package universe:
///
/// - `hello 2.10-3`: `Pre-Depends: dpkg (>= 1.19)`, `Depends: libc6 (>= 2.34),
///   libgreet (>= 2.0), hello-data`. Runtime closure: hello, libc6,
///   libgreet 2.1-1, hello-data. Install-time extra: dpkg, tar.
/// - `libgreet` in two versions, `1.0-1` and `2.1-1`; `oldapp` needs
///   `libgreet (<< 2.0)`.
/// - alternatives: `alt-app` depends on `does-not-exist | alt-b, alt-c | alt-d`.
/// - virtual: `virt-app` depends on `mail-transport-agent`, which only
///   `tiny-mta` provides.
/// - unsatisfiable: `broken-app` → `broken-mid` → `no-such-lib (>= 9)`.
/// - `hello-data` is `Architecture: all`, `Multi-Arch: foreign`, built with
///   gzip; the others use xz.
pub fn standard_packages() -> Vec<DebSpec> {
    vec![
        DebSpec::new("libc6", "2.36-9", ARCH).with_multi_arch("same"),
        DebSpec::new("tar", "1.34+dfsg-1.2", ARCH),
        DebSpec::new("dpkg", "1.21.22", ARCH).with_depends("tar (>= 1.28)"),
        DebSpec::new("libgreet", "1.0-1", ARCH)
            .with_multi_arch("same")
            .with_depends("libc6 (>= 2.17)"),
        DebSpec::new("libgreet", "2.1-1", ARCH)
            .with_multi_arch("same")
            .with_depends("libc6 (>= 2.34)"),
        DebSpec::new("hello-data", "2.10-3", "all")
            .with_multi_arch("foreign")
            .with_compression("gzip"),
        DebSpec::new("hello", "2.10-3", ARCH)
            .with_pre_depends("dpkg (>= 1.19)")
            .with_depends("libc6 (>= 2.34), libgreet (>= 2.0), hello-data (= 2.10-3)")
            .with_file("etc/hello.conf", b"greeting = hello\n", 0o644),
        DebSpec::new("oldapp", "0.9-1", ARCH).with_depends("libgreet (<< 2.0)"),
        DebSpec::new("alt-b", "1.0-1", "all"),
        DebSpec::new("alt-c", "1.0-1", "all"),
        DebSpec::new("alt-d", "1.0-1", "all"),
        DebSpec::new("alt-app", "1.0-1", ARCH)
            .with_depends("does-not-exist | alt-b, alt-c | alt-d"),
        DebSpec::new("tiny-mta", "0.1-1", ARCH).with_provides("mail-transport-agent"),
        DebSpec::new("virt-app", "1.0-1", ARCH).with_depends("mail-transport-agent"),
        DebSpec::new("broken-mid", "1.0-1", ARCH).with_depends("no-such-lib (>= 9)"),
        DebSpec::new("broken-app", "1.0-1", ARCH).with_depends("broken-mid"),
    ]
}

impl ArchiveBuilder {
    pub fn standard() -> Self {
        let mut builder = Self::empty();
        builder.packages = standard_packages();
        builder
    }

    pub fn empty() -> Self {
        ArchiveBuilder {
            packages: Vec::new(),
            compressions: vec![IndexCompression::Plain, IndexCompression::Xz],
            by_hash: false,
            valid_until_seconds: Some(30 * 86_400),
            signer: Signer::Archive,
        }
    }

    pub fn package(mut self, spec: DebSpec) -> Self {
        self.packages.push(spec);
        self
    }

    /// Which `Packages` files exist and are listed in `Release`.
    pub fn index_compressions(mut self, compressions: &[IndexCompression]) -> Self {
        self.compressions = compressions.to_vec();
        self
    }

    /// `Acquire-By-Hash: yes`, with copies under `by-hash/SHA256/`.
    pub fn by_hash(mut self) -> Self {
        self.by_hash = true;
        self
    }

    /// No `Valid-Until` field at all.
    pub fn without_valid_until(mut self) -> Self {
        self.valid_until_seconds = None;
        self
    }

    /// `Valid-Until` a day in the past (`Date` ten days ago).
    pub fn expired(mut self) -> Self {
        self.valid_until_seconds = Some(-86_400);
        self
    }

    /// Sign `InRelease` with a key that is not in the exported keyring.
    pub fn signed_by_unknown_key(mut self) -> Self {
        self.signer = Signer::Unknown;
        self
    }

    pub fn build(self) -> Archive {
        let dir = tempfile::Builder::new()
            .prefix("xbuild-archive-")
            .tempdir()
            .expect("archive temp dir");
        let work = tempfile::Builder::new()
            .prefix("xbuild-debroots-")
            .tempdir()
            .expect("deb roots temp dir");
        let base = dir.path().join(URL_PATH);

        let mut debs = Vec::new();
        let mut packages_text = String::new();
        let mut specs = self.packages.clone();
        specs.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        for spec in &specs {
            let (bytes, installed_size) = build_deb(spec, work.path());
            let filename = spec.pool_path();
            let path = base.join(&filename);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &bytes).unwrap();
            let sha256 = sha256_hex(&bytes);
            packages_text.push_str(&spec.control_fields(installed_size));
            packages_text.push_str(&format!(
                "Filename: {filename}\nSize: {}\nSHA256: {sha256}\n",
                bytes.len()
            ));
            packages_text.push_str(&spec.description());
            packages_text.push('\n');
            debs.push(BuiltDeb {
                spec: spec.clone(),
                filename,
                sha256,
                size: bytes.len() as u64,
            });
        }

        let keys_dir = dir.path().join("keys");
        fs::create_dir_all(&keys_dir).unwrap();
        let keyring = keys_dir.join("archive.gpg");
        let keyring_armored = keys_dir.join("archive.asc");
        let unknown_keyring = keys_dir.join("unknown.gpg");
        fs::write(&keyring, &keys().archive_public).unwrap();
        fs::write(&keyring_armored, &keys().archive_public_armored).unwrap();
        fs::write(&unknown_keyring, &keys().unknown_public).unwrap();

        let archive = Archive {
            dir,
            keyring,
            keyring_armored,
            unknown_keyring,
            debs,
            compressions: self.compressions.clone(),
            by_hash: self.by_hash,
            valid_until_seconds: self.valid_until_seconds,
            signer: self.signer,
            packages_text: packages_text.clone(),
        };
        archive.write_indices_and_sign(packages_text.as_bytes());
        archive
    }
}

/// Builds one `.deb` with `dpkg-deb`; returns its bytes and Installed-Size.
pub fn build_deb(spec: &DebSpec, work: &Path) -> (Vec<u8>, u64) {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    let root = work.join(format!("{}_{}", spec.name, spec.version));
    let write = |relative: &str, contents: &[u8], mode: u32| {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    let script = format!("#!/bin/sh\necho '{}'\n", spec.script_output());
    write(&format!("usr/bin/{}", spec.name), script.as_bytes(), 0o755);
    symlink(&spec.name, root.join(format!("usr/bin/{}-link", spec.name))).unwrap();
    let readme = format!(
        "{} {}\nA package of the xbuild test fixture archive.\n",
        spec.name, spec.version
    );
    write(
        &format!("usr/share/doc/{}/README", spec.name),
        readme.as_bytes(),
        0o644,
    );
    for extra in &spec.extra_files {
        write(&extra.path, &extra.contents, extra.mode);
    }
    for (path, target) in &spec.extra_links {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }
    let installed_bytes = script.len()
        + readme.len()
        + spec
            .extra_files
            .iter()
            .map(|file| file.contents.len())
            .sum::<usize>();
    let installed_size = (installed_bytes as u64).div_ceil(1024) + 3 * 4;

    let control = format!(
        "{}{}",
        spec.control_fields(installed_size),
        spec.description()
    );
    write("DEBIAN/control", control.as_bytes(), 0o644);
    // dpkg-deb insists on sane directory permissions whatever the umask.
    for entry in walk_dirs(&root) {
        fs::set_permissions(&entry, fs::Permissions::from_mode(0o755)).unwrap();
    }

    let output = work.join(format!("{}_{}.deb", spec.name, spec.version));
    run_ok(
        Command::new("dpkg-deb")
            .env("SOURCE_DATE_EPOCH", DEB_EPOCH.to_string())
            .arg(format!("-Z{}", spec.compression))
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(&output),
    );
    if let Some(data_tar) = &spec.data_tar {
        super::crafted::replace_data_tar(&output, data_tar);
    }
    (fs::read(&output).unwrap(), installed_size)
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let mut index = 0;
    while index < dirs.len() {
        for entry in fs::read_dir(&dirs[index]).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            }
        }
        index += 1;
    }
    dirs
}

/// One package file in the archive.
#[derive(Clone, Debug)]
pub struct BuiltDeb {
    pub spec: DebSpec,
    /// `Filename:` — relative to the repository URL.
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

/// A built fixture archive; its temp dir is removed when dropped.
pub struct Archive {
    dir: TempDir,
    /// Binary export of the signing key's public half.
    pub keyring: PathBuf,
    /// The same key, ASCII-armored.
    pub keyring_armored: PathBuf,
    /// The public half of the key no test trusts.
    pub unknown_keyring: PathBuf,
    pub debs: Vec<BuiltDeb>,
    compressions: Vec<IndexCompression>,
    by_hash: bool,
    valid_until_seconds: Option<i64>,
    signer: Signer,
    packages_text: String,
}

impl Archive {
    /// The directory to serve (the archive is under `debian/`).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `…/debian` on disk.
    pub fn base(&self) -> PathBuf {
        self.dir.path().join(URL_PATH)
    }

    pub fn dist_dir(&self) -> PathBuf {
        self.base().join("dists").join(SUITE)
    }

    pub fn index_dir(&self) -> PathBuf {
        self.dist_dir()
            .join(COMPONENT)
            .join(format!("binary-{ARCH}"))
    }

    pub fn inrelease(&self) -> PathBuf {
        self.dist_dir().join("InRelease")
    }

    /// The plain `Packages` text as signed.
    pub fn packages_text(&self) -> &str {
        &self.packages_text
    }

    /// The only version of `name`; panics if there are several or none.
    pub fn deb(&self, name: &str) -> &BuiltDeb {
        let mut matches = self.debs.iter().filter(|deb| deb.spec.name == name);
        let deb = matches
            .next()
            .unwrap_or_else(|| panic!("no package {name} in the fixture"));
        assert!(
            matches.next().is_none(),
            "several versions of {name}: use deb_version"
        );
        deb
    }

    pub fn deb_version(&self, name: &str, version: &str) -> &BuiltDeb {
        self.debs
            .iter()
            .find(|deb| deb.spec.name == name && deb.spec.version == version)
            .unwrap_or_else(|| panic!("no package {name} {version} in the fixture"))
    }

    pub fn deb_path(&self, deb: &BuiltDeb) -> PathBuf {
        self.base().join(&deb.filename)
    }

    /// Writes every listed `Packages` variant (and by-hash copies), the
    /// `Release` and the signed `InRelease`.
    fn write_indices_and_sign(&self, plain: &[u8]) {
        let index_dir = self.index_dir();
        fs::create_dir_all(&index_dir).unwrap();
        let mut sha256_lines = String::new();
        for compression in &self.compressions {
            let bytes = compression.compress(plain);
            fs::write(index_dir.join(compression.file_name()), &bytes).unwrap();
            let hex = sha256_hex(&bytes);
            if self.by_hash {
                let by_hash = index_dir.join("by-hash").join("SHA256");
                fs::create_dir_all(&by_hash).unwrap();
                fs::write(by_hash.join(&hex), &bytes).unwrap();
            }
            sha256_lines.push_str(&format!(
                " {hex} {:>16} {COMPONENT}/binary-{ARCH}/{}\n",
                bytes.len(),
                compression.file_name()
            ));
        }
        let (date, valid_until) = match self.valid_until_seconds {
            Some(offset) if offset < 0 => {
                (dates::now_plus(-10 * 86_400), Some(dates::now_plus(offset)))
            }
            Some(offset) => (dates::now_plus(-3600), Some(dates::now_plus(offset))),
            None => (dates::now_plus(-3600), None),
        };
        let mut release = format!(
            "Origin: xbuild-fixture\nLabel: xbuild-fixture\nSuite: {SUITE}\nCodename: {SUITE}\n\
             Date: {}\n",
            dates::release_date(date)
        );
        if let Some(valid_until) = valid_until {
            release.push_str(&format!(
                "Valid-Until: {}\n",
                dates::release_date(valid_until)
            ));
        }
        if self.by_hash {
            release.push_str("Acquire-By-Hash: yes\n");
        }
        release.push_str(&format!(
            "Architectures: {ARCH}\nComponents: {COMPONENT}\n\
             Description: xbuild test fixture archive\nSHA256:\n{sha256_lines}"
        ));
        let release_path = self.dist_dir().join("Release");
        fs::write(&release_path, release).unwrap();
        keys().clearsign(self.signer, &release_path, &self.inrelease());
    }

    /// Changes the served `Packages` files after signing (every listed
    /// compression, and the by-hash copies in place): one description line
    /// differs. Returns the sha256 of every tampered file and of the tampered
    /// plain text.
    pub fn tamper_packages(&self) -> Vec<String> {
        let tampered =
            self.packages_text
                .replacen("fixture package hello\n", "fixture package hellO\n", 1);
        assert_ne!(tampered, self.packages_text, "nothing to tamper with");
        let plain = tampered.as_bytes();
        let mut digests = vec![sha256_hex(plain)];
        let by_hash_dir = self.index_dir().join("by-hash").join("SHA256");
        for compression in &self.compressions {
            let original = fs::read(self.index_dir().join(compression.file_name())).unwrap();
            let bytes = compression.compress(plain);
            fs::write(self.index_dir().join(compression.file_name()), &bytes).unwrap();
            if self.by_hash {
                fs::write(by_hash_dir.join(sha256_hex(&original)), &bytes).unwrap();
            }
            digests.push(sha256_hex(&bytes));
        }
        digests
    }

    /// Changes one digit of the first `ar` member's mtime in the served
    /// `.deb`: the file stays a valid package of the same size, but its
    /// sha256 no longer matches `Packages`. Returns the new sha256.
    pub fn tamper_deb(&self, deb: &BuiltDeb) -> String {
        let path = self.deb_path(deb);
        let mut bytes = fs::read(&path).unwrap();
        assert_eq!(
            &bytes[..8],
            b"!<arch>\n",
            "not an ar archive: {}",
            path.display()
        );
        // Global header (8 bytes), then member name (16 bytes), then mtime.
        let digit = &mut bytes[8 + 16 + 1];
        assert!(
            digit.is_ascii_digit(),
            "unexpected ar header in {}",
            path.display()
        );
        *digit = if *digit == b'0' { b'1' } else { *digit - 1 };
        fs::write(&path, &bytes).unwrap();
        sha256_hex(&bytes)
    }

    /// Flips one character of the signed text of `InRelease` (the `Label`),
    /// so the signature no longer verifies. Returns the new file's sha256.
    pub fn break_signature(&self) -> String {
        let path = self.inrelease();
        let text = fs::read_to_string(&path).unwrap();
        let broken = text.replacen("Label: xbuild-fixture\n", "Label: xbuild-fixturf\n", 1);
        assert_ne!(broken, text, "no Label line in {}", path.display());
        fs::write(&path, &broken).unwrap();
        sha256_hex(broken.as_bytes())
    }

    /// Re-signs after the package files changed (used to publish a new
    /// version of the archive in place).
    pub fn republish(&mut self, packages_text: String) {
        self.packages_text = packages_text;
        self.write_indices_and_sign(self.packages_text.as_bytes());
    }
}
