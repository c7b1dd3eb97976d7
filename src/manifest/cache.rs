//! `[cache]`: the shared remote caches a project's builds read (and, with a
//! signing key, write) and the keys whose signatures its entries must carry.
//!
//! ```toml
//! [cache]
//! remote = ["https://cache.example.internal/xbuild", "file:///mnt/team-cache"]
//! trusted-keys = ["ci:Zm9v…"]
//! ```
//!
//! Both lists add to what `--remote`/`XBUILD_REMOTE` and `--trust` give.

use super::Validator;
use serde::Deserialize;
use toml::Spanned;

/// A validated `[cache]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheSpec {
    /// Remote cache URLs, in the order they are asked.
    pub remotes: Vec<String>,
    /// Public keys (`NAME:<base64>`) whose signatures are trusted.
    pub trusted_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawCache {
    #[serde(default)]
    remote: Vec<Spanned<String>>,
    #[serde(default)]
    trusted_keys: Vec<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn cache(&self, raw: RawCache) -> Result<CacheSpec, super::ManifestError> {
        let mut spec = CacheSpec::default();
        for remote in raw.remote {
            check_remote_url(remote.get_ref())
                .map_err(|message| self.error(remote.span(), message))?;
            spec.remotes.push(remote.into_inner());
        }
        for key in raw.trusted_keys {
            check_public_key(key.get_ref()).map_err(|message| self.error(key.span(), message))?;
            spec.trusted_keys.push(key.into_inner());
        }
        Ok(spec)
    }
}

/// The remote cache URLs xbuild can use: `file:///path`,
/// `http(s)://host[:port]/prefix`, `oci://host[:port]/repository`.
pub fn check_remote_url(url: &str) -> Result<(), String> {
    const FORMS: &str =
        "a remote cache is file:///PATH, http(s)://HOST/PREFIX or oci://REGISTRY/REPOSITORY";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("remote cache `{url}` has no scheme ({FORMS})"));
    };
    match scheme {
        "file" => {
            if !rest.starts_with('/') {
                return Err(format!(
                    "remote cache `{url}` is not an absolute path (file:///PATH: three slashes)"
                ));
            }
        }
        "http" | "https" => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.is_empty() || host.rsplit('@').next().is_some_and(str::is_empty) {
                return Err(format!("remote cache `{url}` names no host ({FORMS})"));
            }
            if rest.contains(['?', '#']) {
                return Err(format!(
                    "remote cache `{url}` has a query or fragment; give a plain prefix URL"
                ));
            }
        }
        "oci" => {
            let (host, repository) = rest.split_once('/').unwrap_or((rest, ""));
            if host.is_empty() || repository.is_empty() {
                return Err(format!(
                    "remote cache `{url}` needs a registry and a repository (oci://REGISTRY/REPOSITORY)"
                ));
            }
            if repository.chars().any(|c| c.is_ascii_uppercase()) || repository.contains(':') {
                return Err(format!(
                    "remote cache `{url}`: the repository is lowercase and has no tag"
                ));
            }
        }
        other => {
            return Err(format!(
                "remote cache `{url}`: unknown scheme `{other}` ({FORMS})"
            ));
        }
    }
    Ok(())
}

/// A public key as `xbuild cache keygen` prints it: `NAME:<base64 of 32 bytes>`.
pub fn check_public_key(text: &str) -> Result<(), String> {
    text.parse::<xbuild_cache::sign::TrustedKey>()
        .map(drop)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_are_checked() {
        for good in [
            "file:///srv/cache",
            "http://127.0.0.1:8080/xb",
            "https://cache.internal/prefix",
            "oci://127.0.0.1:5000/team/cache",
        ] {
            assert_eq!(check_remote_url(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("file://relative/path", "absolute"),
            ("/srv/cache", "no scheme"),
            ("http:///prefix", "no host"),
            ("http://h/p?x=1", "query"),
            ("oci://127.0.0.1:5000", "repository"),
            ("oci://r/Repo", "lowercase"),
            ("s3://bucket/x", "unknown scheme"),
        ] {
            let error = check_remote_url(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn public_keys_are_checked() {
        let key = format!("ci:{}", "A".repeat(43) + "=");
        assert_eq!(check_public_key(&key), Ok(()));
        for bad in ["nocolon", ":AAAA", "ci:AAAA", "ci:!!!"] {
            let error = check_public_key(bad).unwrap_err();
            assert!(
                error.contains("trusted key") || error.contains("key"),
                "{bad}: {error}"
            );
        }
    }
}
