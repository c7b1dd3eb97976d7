//! More suites in a fixture archive: a `-security` overlay, a
//! `NotAutomatic` backports suite, a suite whose Release says `Suite:
//! stable`, or the same suite signed again with another `Date` (a newer or
//! an older snapshot). Each is a real signed suite beside the standard one,
//! under `debian/dists/<name>/`, its packages in the shared `pool/`.

use std::fs;
use std::time::SystemTime;

use super::archive::{Archive, BuiltDeb, COMPONENT, DebSpec, IndexCompression, sha256_hex};
use super::dates;
use super::gpg::{Signer, keys};

/// A suite to publish with [`Archive::publish_suite`].
#[derive(Clone, Debug)]
pub struct SuiteSpec {
    /// The directory under `dists/` (what a source's `suite` names).
    pub name: String,
    /// The Release's `Suite:` (default: the name) and `Codename:`.
    pub suite_field: Option<String>,
    pub codename: Option<String>,
    pub not_automatic: bool,
    pub but_automatic_upgrades: bool,
    /// The Release's `Date` (default: an hour ago); no `Valid-Until`.
    pub date: Option<SystemTime>,
    pub packages: Vec<DebSpec>,
    /// The architectures the Release lists (default: arm64).
    pub architectures: Vec<String>,
}

impl SuiteSpec {
    pub fn new(name: &str, packages: Vec<DebSpec>) -> SuiteSpec {
        SuiteSpec {
            name: name.to_owned(),
            suite_field: None,
            codename: None,
            not_automatic: false,
            but_automatic_upgrades: false,
            date: None,
            packages,
            architectures: vec![super::archive::ARCH.to_owned()],
        }
    }

    pub fn with_suite_field(mut self, suite: &str, codename: &str) -> SuiteSpec {
        self.suite_field = Some(suite.to_owned());
        self.codename = Some(codename.to_owned());
        self
    }

    /// `NotAutomatic: yes`, `ButAutomaticUpgrades: yes` (as backports).
    pub fn not_automatic(mut self) -> SuiteSpec {
        self.not_automatic = true;
        self.but_automatic_upgrades = true;
        self
    }

    pub fn dated(mut self, date: SystemTime) -> SuiteSpec {
        self.date = Some(date);
        self
    }

    pub fn with_architectures(mut self, architectures: &[&str]) -> SuiteSpec {
        self.architectures = architectures.iter().map(|a| a.to_string()).collect();
        self
    }
}

impl Archive {
    /// Builds the suite's packages into the pool, writes its `Packages`
    /// (plain and xz) and `Release`, and signs its `InRelease` with the
    /// archive key. Publishing a name again replaces that suite (a new
    /// snapshot); the pool keeps every package ever published.
    pub fn publish_suite(&self, spec: &SuiteSpec) -> Vec<BuiltDeb> {
        let work = tempfile::Builder::new()
            .prefix("xbuild-suite-debroots-")
            .tempdir()
            .expect("deb roots temp dir");
        let base = self.base();
        let mut built = Vec::new();
        let mut plain = String::new();
        for package in &spec.packages {
            let (bytes, installed_size) = super::archive::build_deb(package, work.path());
            let filename = package.pool_path();
            let path = base.join(&filename);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &bytes).unwrap();
            let sha256 = sha256_hex(&bytes);
            plain.push_str(&package.control_fields(installed_size));
            plain.push_str(&format!(
                "Filename: {filename}\nSize: {}\nSHA256: {sha256}\n",
                bytes.len()
            ));
            plain.push_str(&package.description());
            plain.push('\n');
            built.push(BuiltDeb {
                spec: package.clone(),
                filename,
                sha256,
                size: bytes.len() as u64,
            });
        }
        let dist = base.join("dists").join(&spec.name);
        let _ = fs::remove_dir_all(&dist);
        let mut sha256_lines = String::new();
        for architecture in &spec.architectures {
            let directory = format!("{COMPONENT}/binary-{architecture}");
            let index_dir = dist.join(&directory);
            fs::create_dir_all(&index_dir).unwrap();
            let text = if architecture == super::archive::ARCH {
                plain.as_str()
            } else {
                ""
            };
            for compression in [IndexCompression::Plain, IndexCompression::Xz] {
                let bytes = compression.compress(text.as_bytes());
                fs::write(index_dir.join(compression.file_name()), &bytes).unwrap();
                sha256_lines.push_str(&format!(
                    " {} {:>16} {directory}/{}\n",
                    sha256_hex(&bytes),
                    bytes.len(),
                    compression.file_name()
                ));
            }
        }
        let date = spec.date.unwrap_or_else(|| dates::now_plus(-3600));
        let mut release = format!(
            "Origin: xbuild-fixture\nLabel: xbuild-fixture\nSuite: {}\nCodename: {}\nDate: {}\n",
            spec.suite_field.as_deref().unwrap_or(&spec.name),
            spec.codename.as_deref().unwrap_or(&spec.name),
            dates::release_date(date)
        );
        if spec.not_automatic {
            release.push_str("NotAutomatic: yes\n");
        }
        if spec.but_automatic_upgrades {
            release.push_str("ButAutomaticUpgrades: yes\n");
        }
        release.push_str(&format!(
            "Architectures: {}\nComponents: {COMPONENT}\n\
             Description: xbuild test fixture suite {}\nSHA256:\n{sha256_lines}",
            spec.architectures.join(" "),
            spec.name
        ));
        let release_path = dist.join("Release");
        fs::write(&release_path, release).unwrap();
        keys().clearsign(Signer::Archive, &release_path, &dist.join("InRelease"));
        built
    }
}
