//! Image references as docker and podman spell them:
//! `[host[:port]/]repository[:tag][@sha256:…]`. A first component with a
//! `.` or `:`, or `localhost`, is the registry; without one the image is on
//! the default registry, which xbuild does not guess: the reference must
//! name its registry.

use std::fmt;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    /// The tag; `latest` when the reference gives neither tag nor digest.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// What a manifest is put or read under: the digest if given, else
    /// the tag.
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `host/repository`.
    pub fn repository_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at a digest: `host/repo@sha256:…`.
    pub fn at_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository_path())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository_path())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = String;

    fn from_str(text: &str) -> Result<Reference, String> {
        let text = text.strip_prefix("docker://").unwrap_or(text);
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
                    format!("`{text}`: a digest is sha256:<64 hex digits>, not `{digest}`")
                })?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "`{text}`: a digest is sha256:<64 hex digits>, not `{digest}`"
                    ));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        let Some((registry, path)) = rest.split_once('/') else {
            return Err(format!(
                "`{text}` names no registry: write it as HOST[:PORT]/REPOSITORY[:TAG] (e.g. 127.0.0.1:5000/team/app:1.0)"
            ));
        };
        let is_registry =
            registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !is_registry {
            return Err(format!(
                "`{text}` names no registry (`{registry}` is not a host): write it as HOST[:PORT]/REPOSITORY[:TAG]"
            ));
        }
        // A tag is after the last `:` of the last component.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_owned())),
            _ => (path, None),
        };
        xbuild_cache::backend::registry::check_repository(repository)
            .map_err(|reason| format!("`{text}`: {reason}"))?;
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.starts_with('_'))
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid {
                return Err(format!(
                    "`{text}`: the tag `{tag}` is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
                ));
            }
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_docker_spells_them() {
        let plain: Reference = "127.0.0.1:5000/team/app".parse().unwrap();
        assert_eq!(plain.registry, "127.0.0.1:5000");
        assert_eq!(plain.repository, "team/app");
        assert_eq!(plain.target(), "latest");
        let tagged: Reference = "registry.test/app:1.0".parse().unwrap();
        assert_eq!(tagged.tag.as_deref(), Some("1.0"));
        assert_eq!(tagged.to_string(), "registry.test/app:1.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned: Reference = format!("localhost:5000/app@{digest}").parse().unwrap();
        assert_eq!(pinned.target(), digest);
        assert_eq!(pinned.tag, None);
        for bad in [
            "app:1.0",
            "team/app",
            "127.0.0.1:5000/Team/app",
            "127.0.0.1:5000/app:bad tag",
            "127.0.0.1:5000/app@sha256:abc",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
