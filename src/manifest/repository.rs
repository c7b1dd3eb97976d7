//! `[packages] repository`: the Debian archives (package sources) an
//! image's packages come from, as a list used exactly as written.
//!
//! ```toml
//! [[packages.repository]]
//! url = "http://<mirror>/debian"
//! suite = "bookworm"
//! [[packages.repository]]
//! url = "http://<mirror>/debian-security"
//! suite = "bookworm-security"
//! ```
//!
//! The single table of earlier manifests (`repository = { url = … }`) is a
//! list of one. Each entry: `url`, `suite`, `components`, `keyring`,
//! `architectures` (the Debian architectures it is read for).

use super::Validator;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One `[[packages.repository]]`: a suite of a Debian archive.
///
/// `Debug` and `Display` redact credentials in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RepositorySpec {
    /// Archive root (`http://<mirror>/debian`), without a trailing `/`.
    /// May hold credentials: print [`RepositorySpec::redacted_url`] instead.
    pub url: String,
    pub suite: Option<String>,
    pub components: Option<Vec<String>>,
    /// Absolute path of the OpenPGP keyring that signs the archive.
    pub keyring: Option<PathBuf>,
    /// The Debian architectures it is read for (default: every one).
    pub architectures: Option<Vec<String>>,
}

impl RepositorySpec {
    /// The URL with any `user:password@` replaced by `***@`.
    pub fn redacted_url(&self) -> String {
        crate::http::redact(&self.url)
    }
}

impl fmt::Display for RepositorySpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.redacted_url())?;
        if let Some(suite) = &self.suite {
            write!(formatter, " {suite}")?;
        }
        if let Some(components) = &self.components {
            write!(formatter, " {}", components.join(" "))?;
        }
        Ok(())
    }
}

impl fmt::Debug for RepositorySpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RepositorySpec")
            .field("url", &self.redacted_url())
            .field("suite", &self.suite)
            .field("components", &self.components)
            .field("keyring", &self.keyring)
            .field("architectures", &self.architectures)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRepository {
    url: Spanned<String>,
    suite: Option<Spanned<String>>,
    components: Option<Spanned<Vec<Spanned<String>>>>,
    keyring: Option<Spanned<String>>,
    architectures: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `repository`: one table or a list of tables (`[[packages.repository]]`).
pub(super) struct RawRepositories(pub Vec<RawRepository>);

impl<'de> Deserialize<'de> for RawRepositories {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = RawRepositories;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a repository table or a list of them")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawRepository::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|one| RawRepositories(vec![one]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(one) = seq.next_element()? {
                    list.push(one);
                }
                Ok(RawRepositories(list))
            }
        }
        deserializer.deserialize_any(OneOrMany)
    }
}

impl Validator<'_> {
    /// The list, each entry checked; an empty list is an error.
    pub(super) fn repositories(
        &self,
        raw: Spanned<RawRepositories>,
        dir: &Path,
    ) -> Result<Vec<RepositorySpec>, super::ManifestError> {
        let span = raw.span();
        let list = raw.into_inner().0;
        if list.is_empty() {
            return Err(self.error(
                span,
                "repository lists no archive: give at least one `{ url = … }`, or leave it out to use the host's apt sources",
            ));
        }
        list.into_iter()
            .map(|one| self.repository(one, dir))
            .collect()
    }

    fn repository(
        &self,
        raw: RawRepository,
        dir: &Path,
    ) -> Result<RepositorySpec, super::ManifestError> {
        use crate::debian::repository::{check_archive_path, check_url};
        let url = raw.url.get_ref().trim_end_matches('/').to_owned();
        check_url(&url).map_err(|message| self.error(raw.url.span(), message))?;
        if let Some(suite) = &raw.suite {
            check_archive_path(suite.get_ref(), "suite")
                .map_err(|message| self.error(suite.span(), message))?;
        }
        let words = |list: Option<Spanned<Vec<Spanned<String>>>>,
                     (what, one): (&str, &str),
                     check: &dyn Fn(&str) -> Result<(), String>|
         -> Result<Option<Vec<String>>, super::ManifestError> {
            let Some(list) = list else {
                return Ok(None);
            };
            if list.get_ref().is_empty() {
                return Err(self.error(list.span(), format!("{what} must list at least one {one}")));
            }
            let mut checked = Vec::new();
            for word in list.into_inner() {
                check(word.get_ref()).map_err(|message| self.error(word.span(), message))?;
                checked.push(word.into_inner());
            }
            Ok(Some(checked))
        };
        let components = words(
            raw.components,
            ("components", "component, e.g. [\"main\"]"),
            &|word| check_archive_path(word, "component"),
        )?;
        let architectures = words(
            raw.architectures,
            ("architectures", "architecture, e.g. [\"arm64\"]"),
            &|word| {
                if !word.is_empty()
                    && word
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    Ok(())
                } else {
                    Err(format!(
                        "`{word}` is not a Debian architecture name (arm64, amd64, armhf…)"
                    ))
                }
            },
        )?;
        let keyring = match raw.keyring {
            Some(keyring) => {
                let resolved = dir.join(keyring.get_ref());
                if !resolved.is_file() {
                    return Err(self.error(
                        keyring.span(),
                        format!("keyring {} does not exist", resolved.display()),
                    ));
                }
                Some(resolved)
            }
            None => None,
        };
        Ok(RepositorySpec {
            url,
            suite: raw.suite.map(Spanned::into_inner),
            components,
            keyring,
            architectures,
        })
    }
}
