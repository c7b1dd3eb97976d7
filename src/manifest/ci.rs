//! `[ci]`: the targets a CI pipeline builds, one job each
//! (`xbuild ci matrix` prints them as a GitHub or GitLab matrix).
//!
//! ```toml
//! [ci]
//! targets = ["aarch64-linux", "armv7-linux", "x86_64-linux"]
//! ```
//!
//! The names are checked against the platform table when a command uses
//! them ([`CiSpec::platforms`]): the table can grow with
//! `$XBUILD_TARGETS_DIR`, which reading a manifest does not look at.

use super::{ManifestError, TextPosition, Validator};
use crate::platform::{Platform, PlatformError, Platforms};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A validated `[ci]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiSpec {
    /// The targets, as written, in order, none listed twice.
    pub targets: Vec<CiTarget>,
}

/// One `[ci] targets` entry and where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiTarget {
    pub name: String,
    pub position: TextPosition,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawCi {
    #[serde(default)]
    targets: Vec<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn ci(&self, raw: RawCi) -> Result<CiSpec, ManifestError> {
        let mut spec = CiSpec::default();
        for target in raw.targets {
            let name = target.get_ref();
            if name.trim().is_empty() {
                return Err(self.error(
                    target.span(),
                    "[ci] targets: a target name is empty (`xbuild targets` lists them)",
                ));
            }
            if let Some(first) = spec
                .targets
                .iter()
                .find(|listed| listed.name.trim().eq_ignore_ascii_case(name.trim()))
            {
                return Err(self.error(
                    target.span(),
                    format!(
                        "[ci] targets: `{name}` is listed twice (first on line {})",
                        first.position.line
                    ),
                ));
            }
            spec.targets.push(CiTarget {
                name: name.clone(),
                position: TextPosition::at_offset(self.text, target.span().start),
            });
        }
        Ok(spec)
    }
}

impl CiSpec {
    /// The platforms of the targets, in order. An unknown name, or two names
    /// of one platform (`arm64` and `aarch64-linux`), is an error at its
    /// line in `manifest` (the `xbuild.toml` the spec was read from).
    pub fn platforms<'p>(
        &self,
        manifest: &Path,
        platforms: &'p Platforms,
    ) -> Result<Vec<&'p Platform>, ManifestError> {
        let invalid = |target: &CiTarget, message: String| ManifestError::Invalid {
            path: PathBuf::from(manifest),
            line: target.position.line,
            column: target.position.column,
            message,
        };
        let mut resolved: Vec<(&CiTarget, &'p Platform)> = Vec::new();
        for target in &self.targets {
            let platform = platforms.parse(&target.name).map_err(|error| {
                let message = match error {
                    PlatformError::Unknown {
                        name,
                        known,
                        suggestion,
                    } => format!(
                        "[ci] targets: unknown target `{name}`{}; known targets: {} \
                         (`xbuild targets` lists every name they answer to)",
                        suggestion
                            .map_or(String::new(), |name| format!(" (did you mean `{name}`?)")),
                        known.join(", ")
                    ),
                    other => format!("[ci] targets: {other}"),
                };
                invalid(target, message)
            })?;
            if let Some((first, _)) = resolved
                .iter()
                .find(|(_, listed)| listed.name == platform.name)
            {
                return Err(invalid(
                    target,
                    format!(
                        "[ci] targets: `{}` is `{}`, already listed as `{}` on line {}",
                        target.name, platform.name, first.name, first.position.line
                    ),
                ));
            }
            resolved.push((target, platform));
        }
        Ok(resolved.into_iter().map(|(_, platform)| platform).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::Manifest;
    use crate::platform::Platforms;
    use std::path::Path;

    fn parse(ci: &str) -> Result<Manifest, String> {
        let text = format!("[image]\nname = \"app\"\n\n[ci]\n{ci}\n");
        Manifest::parse(&text, Path::new("p/xbuild.toml")).map_err(|error| error.to_string())
    }

    fn names(ci: &str) -> Result<Vec<String>, String> {
        let manifest = parse(ci)?;
        let platforms = Platforms::builtin().unwrap();
        let resolved = manifest
            .ci
            .platforms(&manifest.path, &platforms)
            .map_err(|error| error.to_string())?;
        Ok(resolved
            .iter()
            .map(|platform| platform.name.clone())
            .collect())
    }

    #[test]
    fn targets_resolve_to_canonical_names_in_order() {
        assert_eq!(
            names(r#"targets = ["armhf", "aarch64-linux", "linux/amd64"]"#).unwrap(),
            ["armv7-linux", "aarch64-linux", "x86_64-linux"]
        );
        let manifest = parse(r#"targets = ["arm64"]"#).unwrap();
        assert_eq!(manifest.ci.targets[0].name, "arm64");
        assert_eq!(manifest.ci.targets[0].position.line, 5);
        // No [ci] table: no targets.
        let plain = Manifest::parse("[image]\nname = \"app\"\n", Path::new("xbuild.toml"));
        assert!(plain.unwrap().ci.targets.is_empty());
    }

    #[test]
    fn bad_targets_name_the_file_and_line() {
        let error = names("targets = [\n  \"aarch64-linux\",\n  \"sparc-linux\",\n]").unwrap_err();
        assert!(error.starts_with("p/xbuild.toml:7:3: "), "{error}");
        assert!(error.contains("unknown target `sparc-linux`"), "{error}");
        assert!(
            error.contains("armv7-linux") && error.contains("xbuild targets"),
            "{error}"
        );

        let twice = parse(r#"targets = ["armv7-linux", "armv7-linux"]"#).unwrap_err();
        assert!(twice.starts_with("p/xbuild.toml:5:27: "), "{twice}");
        assert!(twice.contains("listed twice"), "{twice}");

        let aliased = names(r#"targets = ["aarch64-linux", "arm64"]"#).unwrap_err();
        assert!(aliased.starts_with("p/xbuild.toml:5:29: "), "{aliased}");
        assert!(aliased.contains("`arm64` is `aarch64-linux`"), "{aliased}");

        let unknown_key = parse(r#"target = ["arm64"]"#).unwrap_err();
        assert!(
            unknown_key.contains("unknown field `target`"),
            "{unknown_key}"
        );
        let empty = parse(r#"targets = [""]"#).unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
    }
}
