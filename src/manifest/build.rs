//! `[[build]]` entries of a manifest: what builds them (cargo, autotools,
//! make, cmake), where their sources come from, the sysroot packages they
//! link against, and cargo's own settings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{ManifestError, Validator};
pub use crate::build::cargo::Strip;

/// What builds a `[[build]]` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildKind {
    Cargo,
    Autotools,
    Make,
    Cmake,
}

/// `[[build]] source`: sources that are not a local directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildSource {
    /// `{ debian = "hello" }`: a Debian source package, from the signed
    /// `Sources` index of the repository.
    Debian(String),
    /// `{ url = "…", sha256 = "…" }`: a tarball, verified by its digest.
    Url {
        url: String,
        sha256: crate::hash::Sha256Digest,
    },
}

/// `[[build]]`: sources cross-compiled for each target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSpec {
    pub kind: BuildKind,
    /// Absolute source directory (`path`, default the manifest's directory).
    pub path: PathBuf,
    /// Where the sources come from when not from `path`.
    pub source: Option<BuildSource>,
    /// Target `-dev` packages the build compiles and links against.
    pub sysroot: Vec<String>,
    /// What a cargo build builds (defaults for other kinds).
    pub cargo: CargoOptions,
}

/// The `cargo build` settings of a `kind = "cargo"` build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CargoOptions {
    pub features: Vec<String>,
    pub no_default_features: bool,
    /// Default `release`.
    pub profile: String,
    /// Only these binaries (default: all of the package's).
    pub bins: Vec<String>,
    /// The workspace member to build.
    pub package: Option<String>,
    /// Default [`Strip::Debuginfo`]: debug information in an image is dead
    /// weight; symbols keep backtraces readable.
    pub strip: Strip,
}

impl Default for CargoOptions {
    fn default() -> Self {
        CargoOptions {
            features: Vec::new(),
            no_default_features: false,
            profile: "release".to_owned(),
            bins: Vec::new(),
            package: None,
            strip: Strip::Debuginfo,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawBuild {
    kind: BuildKind,
    path: Option<Spanned<String>>,
    source: Option<Spanned<RawSource>>,
    #[serde(default)]
    sysroot: Vec<Spanned<String>>,
    features: Option<Spanned<Vec<Spanned<String>>>>,
    no_default_features: Option<Spanned<bool>>,
    profile: Option<Spanned<String>>,
    bins: Option<Spanned<Vec<Spanned<String>>>>,
    package: Option<Spanned<String>>,
    strip: Option<Spanned<RawStrip>>,
}

/// `strip = true | false | "none" | "debuginfo" | "symbols"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawStrip {
    Flag(bool),
    Level(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    debian: Option<String>,
    path: Option<String>,
    url: Option<String>,
    sha256: Option<String>,
}

impl Validator<'_> {
    pub(super) fn build(&self, raw: RawBuild, dir: &Path) -> Result<BuildSpec, ManifestError> {
        let cargo = self.cargo_options(&raw)?;
        let mut path = raw
            .path
            .map_or_else(|| dir.to_path_buf(), |path| dir.join(path.get_ref()));
        let mut source = None;
        if let Some(spanned) = &raw.source {
            let span = spanned.span();
            let raw_source = spanned.get_ref();
            const FORMS: &str = "`source` is one of { debian = \"<package>\" }, { path = \"<dir>\" } or { url = \"<tarball>\", sha256 = \"<hex>\" }";
            match (
                &raw_source.debian,
                &raw_source.path,
                &raw_source.url,
                &raw_source.sha256,
            ) {
                (Some(package), None, None, None) => {
                    source = Some(BuildSource::Debian(package.clone()));
                }
                (None, Some(local), None, None) => path = dir.join(local),
                (None, None, Some(url), Some(sha256)) => {
                    crate::http::check_url(url)
                        .map_err(|message| self.error(span.clone(), message))?;
                    let sha256 = crate::hash::Sha256Digest::parse(sha256).ok_or_else(|| {
                        self.error(
                            span.clone(),
                            format!("`sha256 = \"{sha256}\"` is not 64 hexadecimal digits"),
                        )
                    })?;
                    source = Some(BuildSource::Url {
                        url: url.clone(),
                        sha256,
                    });
                }
                (None, None, Some(_), None) => {
                    return Err(self.error(
                        span,
                        "a `url` source needs its `sha256`, so the download can be verified",
                    ));
                }
                _ => return Err(self.error(span, FORMS)),
            }
            if raw.kind == BuildKind::Cargo && source.is_some() {
                return Err(self.error(
                    span,
                    "a cargo build takes its sources from `path` (or `source = { path = … }`)",
                ));
            }
        }
        let sysroot = self.package_names(raw.sysroot, "sysroot")?;
        Ok(BuildSpec {
            kind: raw.kind,
            path,
            source,
            sysroot: sysroot.into_iter().map(Spanned::into_inner).collect(),
            cargo,
        })
    }

    /// The cargo settings of `raw`, refused on builds of another kind.
    fn cargo_options(&self, raw: &RawBuild) -> Result<CargoOptions, ManifestError> {
        let mut options = CargoOptions::default();
        let spans = [
            ("features", raw.features.as_ref().map(Spanned::span)),
            (
                "no-default-features",
                raw.no_default_features.as_ref().map(Spanned::span),
            ),
            ("profile", raw.profile.as_ref().map(Spanned::span)),
            ("bins", raw.bins.as_ref().map(Spanned::span)),
            ("package", raw.package.as_ref().map(Spanned::span)),
            ("strip", raw.strip.as_ref().map(Spanned::span)),
        ];
        if raw.kind != BuildKind::Cargo {
            if let Some((name, Some(span))) = spans.iter().find(|(_, span)| span.is_some()) {
                return Err(self.error(
                    span.clone(),
                    format!(
                        "`{name}` is a setting of cargo builds; this build's kind is not cargo"
                    ),
                ));
            }
            return Ok(options);
        }
        let word = |value: &Spanned<String>, what: &str| -> Result<String, ManifestError> {
            let text = value.get_ref();
            let valid = !text.is_empty()
                && text.chars().all(|character| {
                    character.is_ascii_alphanumeric() || "-_/".contains(character)
                });
            if valid {
                Ok(text.clone())
            } else {
                Err(self.error(
                    value.span(),
                    format!("{what} `{text}` is not valid: letters, digits, `-`, `_` (and `/` in features)"),
                ))
            }
        };
        if let Some(features) = &raw.features {
            for feature in features.get_ref() {
                options.features.push(word(feature, "feature")?);
            }
        }
        if let Some(flag) = &raw.no_default_features {
            options.no_default_features = *flag.get_ref();
        }
        if let Some(profile) = &raw.profile {
            let name = word(profile, "profile")?;
            if name.contains('/') || ["test", "bench"].contains(&name.as_str()) {
                return Err(self.error(profile.span(), format!("profile `{name}` does not build binaries for an image; use `release`, `dev` or a custom profile")));
            }
            options.profile = name;
        }
        if let Some(bins) = &raw.bins {
            if bins.get_ref().is_empty() {
                return Err(self.error(
                    bins.span(),
                    "bins lists no binary; leave it out to build them all",
                ));
            }
            for bin in bins.get_ref() {
                options.bins.push(word(bin, "binary")?);
            }
        }
        if let Some(package) = &raw.package {
            options.package = Some(word(package, "package")?);
        }
        if let Some(strip) = &raw.strip {
            options.strip = match strip.get_ref() {
                RawStrip::Flag(true) => Strip::Symbols,
                RawStrip::Flag(false) => Strip::None,
                RawStrip::Level(level) => match level.as_str() {
                    "none" => Strip::None,
                    "debuginfo" => Strip::Debuginfo,
                    "symbols" => Strip::Symbols,
                    other => {
                        return Err(self.error(
                            strip.span(),
                            format!("strip = \"{other}\" is not one of \"none\", \"debuginfo\", \"symbols\" (or true, false)"),
                        ));
                    }
                },
            };
        }
        Ok(options)
    }
}
