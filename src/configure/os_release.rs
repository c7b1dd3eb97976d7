//! `/usr/lib/os-release` (and the `/etc/os-release` link to it) when no
//! package of the image ships one (base-files is not in the closure): the
//! fields Debian's base-files writes, from the suite's signed Release
//! (`Version`, `Codename`), without its URL fields. Scanners need it: syft
//! gives every package an empty purl without it.

use super::ConfigureError;
use std::path::Path;

/// The suite an image's packages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteRelease {
    /// `bookworm`.
    pub codename: String,
    /// The Release file's `Version` (`12.8`); `None` for testing and
    /// unstable, which have none.
    pub version: Option<String>,
}

/// The text base-files writes for `suite`, its `*_URL` fields left out.
pub fn text(suite: &SuiteRelease) -> String {
    let codename = &suite.codename;
    let major = suite
        .version
        .as_deref()
        .and_then(|version| version.split('.').next())
        .filter(|major| !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()));
    match major {
        Some(major) => {
            let mut text = format!(
                "PRETTY_NAME=\"Debian GNU/Linux {major} ({codename})\"\n\
                 NAME=\"Debian GNU/Linux\"\n\
                 VERSION_ID=\"{major}\"\n\
                 VERSION=\"{major} ({codename})\"\n\
                 VERSION_CODENAME={codename}\n"
            );
            // base-files 13 on also names the point release.
            if major.parse::<u32>().is_ok_and(|number| number >= 13)
                && let Some(version) = &suite.version
            {
                text.push_str(&format!("DEBIAN_VERSION_FULL={version}\n"));
            }
            text.push_str("ID=debian\n");
            text
        }
        // Testing and unstable: no version, as base-files has it there.
        None => format!(
            "PRETTY_NAME=\"Debian GNU/Linux {codename}/sid\"\n\
             NAME=\"Debian GNU/Linux\"\n\
             VERSION_CODENAME={codename}\n\
             ID=debian\n"
        ),
    }
}

/// Writes `usr/lib/os-release` and the `etc/os-release` link under `root`.
pub fn write(root: &Path, suite: &SuiteRelease) -> Result<(), ConfigureError> {
    super::write_file(
        &root.join("usr/lib/os-release"),
        text(suite).as_bytes(),
        0o644,
    )?;
    super::make_dir(&root.join("etc"), 0o755)?;
    super::symlink("../usr/lib/os-release", &root.join("etc/os-release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stable_release_has_base_files_fields() {
        let text = text(&SuiteRelease {
            codename: "bookworm".to_owned(),
            version: Some("12.8".to_owned()),
        });
        assert_eq!(
            text,
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
        );
        let trixie = super::text(&SuiteRelease {
            codename: "trixie".to_owned(),
            version: Some("13.1".to_owned()),
        });
        assert!(trixie.contains("VERSION_CODENAME=trixie\nDEBIAN_VERSION_FULL=13.1\nID=debian\n"));
        assert!(!trixie.contains("URL"));
    }

    #[test]
    fn testing_has_no_version() {
        let text = text(&SuiteRelease {
            codename: "forky".to_owned(),
            version: None,
        });
        assert!(!text.contains("VERSION_ID"));
        assert!(text.contains("VERSION_CODENAME=forky\n"));
    }
}
