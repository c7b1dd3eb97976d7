//! Debian package versions, `[epoch:]upstream[-revision]`, and dpkg's exact
//! ordering of them. This module owns [`Version`]: parsing with dpkg's
//! validation (lenient where dpkg only warns), display, and comparison.
//!
//! Ordering follows dpkg's `verrevcmp`: epochs compare numerically; then
//! upstream and revision each compare as alternating runs of non-digits
//! (character by character, `~` before the end of the string, the end before
//! letters, letters before other characters) and digit runs (numerically).
//! A missing revision orders like `0`, so `1.0` equals `1.0-0`; `1.01`
//! equals `1.1`. Equality is dpkg's equality, not textual equality.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A version string dpkg would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version string is empty")]
    Empty,
    #[error("version {version:?} has embedded spaces")]
    EmbeddedSpace { version: String },
    #[error("epoch in version {version:?} is empty")]
    EmptyEpoch { version: String },
    #[error("epoch in version {version:?} is not a number")]
    EpochNotNumber { version: String },
    #[error("epoch in version {version:?} is too big")]
    EpochTooBig { version: String },
    #[error("nothing after colon in version {version:?}")]
    NothingAfterColon { version: String },
    #[error("revision in version {version:?} is empty")]
    EmptyRevision { version: String },
    #[error("upstream part of version {version:?} is empty")]
    EmptyUpstream { version: String },
}

/// Something dpkg warns about but accepts; see [`Version::warnings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionWarning {
    /// The upstream part does not start with a digit.
    UpstreamNotStartingWithDigit,
    /// The upstream part holds a character outside `[A-Za-z0-9.+~:-]`.
    InvalidUpstreamCharacter,
    /// The revision holds a character outside `[A-Za-z0-9.+~]`.
    InvalidRevisionCharacter,
}

/// A Debian version. Compare with [`Ord`] (dpkg's ordering); `==` is
/// dpkg's equality, so `1.0 == 1.0-0 == 0:1.0`.
#[derive(Clone, Debug, Default)]
pub struct Version {
    pub epoch: u32,
    pub upstream: String,
    /// Empty when the version has no `-revision`.
    pub revision: String,
}

impl Version {
    /// What dpkg would warn about for this version (nothing for a
    /// well-formed one).
    pub fn warnings(&self) -> Vec<VersionWarning> {
        let mut warnings = Vec::new();
        if !self.upstream.starts_with(|c: char| c.is_ascii_digit()) {
            warnings.push(VersionWarning::UpstreamNotStartingWithDigit);
        }
        if !self
            .upstream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+~:".contains(c))
        {
            warnings.push(VersionWarning::InvalidUpstreamCharacter);
        }
        if !self
            .revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~".contains(c))
        {
            warnings.push(VersionWarning::InvalidRevisionCharacter);
        }
        warnings
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let version = text.trim();
        if version.is_empty() {
            return Err(VersionError::Empty);
        }
        if version.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(VersionError::EmbeddedSpace {
                version: version.to_string(),
            });
        }
        let owned = || version.to_string();
        let (epoch, rest) = match version.split_once(':') {
            None => (0, version),
            Some((epoch_text, rest)) => {
                if epoch_text.is_empty() {
                    return Err(VersionError::EmptyEpoch { version: owned() });
                }
                if !epoch_text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VersionError::EpochNotNumber { version: owned() });
                }
                // dpkg keeps epochs in an int.
                let epoch = epoch_text
                    .parse::<u32>()
                    .ok()
                    .filter(|epoch| *epoch <= i32::MAX as u32)
                    .ok_or_else(|| VersionError::EpochTooBig { version: owned() })?;
                if rest.is_empty() {
                    return Err(VersionError::NothingAfterColon { version: owned() });
                }
                (epoch, rest)
            }
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            None => (rest, ""),
            Some((_, "")) => return Err(VersionError::EmptyRevision { version: owned() }),
            Some(parts) => parts,
        };
        if upstream.is_empty() {
            return Err(VersionError::EmptyUpstream { version: owned() });
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

/// Serialized as the version string, e.g. `"1:2.3-4"`.
impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// dpkg's weight of one character in a non-digit run; `None` is the end of
/// the string. `~` sorts before the end, the end before letters, letters
/// before everything else.
fn weight(byte: Option<u8>) -> i32 {
    match byte {
        None => 0,
        Some(b'~') => -1,
        Some(byte) if byte.is_ascii_digit() => 0,
        Some(byte) if byte.is_ascii_alphabetic() => i32::from(byte),
        Some(byte) => i32::from(byte) + 256,
    }
}

/// Compares an upstream part or a revision the way dpkg's `verrevcmp` does.
pub fn compare_part(left: &str, right: &str) -> Ordering {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    let (mut i, mut j) = (0, 0);
    let is_digit = |bytes: &[u8], index: usize| bytes.get(index).is_some_and(u8::is_ascii_digit);
    while i < left.len() || j < right.len() {
        // Non-digit run, character by character.
        while (i < left.len() && !is_digit(left, i)) || (j < right.len() && !is_digit(right, j)) {
            let left_weight = weight(left.get(i).copied());
            let right_weight = weight(right.get(j).copied());
            if left_weight != right_weight {
                return left_weight.cmp(&right_weight);
            }
            i += 1;
            j += 1;
        }
        // Digit run, numerically: skip leading zeros, then the longer run
        // wins, else the first differing digit decides.
        while left.get(i) == Some(&b'0') {
            i += 1;
        }
        while right.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_difference = Ordering::Equal;
        while is_digit(left, i) && is_digit(right, j) {
            if first_difference == Ordering::Equal {
                first_difference = left[i].cmp(&right[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit(left, i) {
            return Ordering::Greater;
        }
        if is_digit(right, j) {
            return Ordering::Less;
        }
        if first_difference != Ordering::Equal {
            return first_difference;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Version {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn assert_order(left: &str, right: &str, expected: Ordering) {
        assert_eq!(
            version(left).cmp(&version(right)),
            expected,
            "{left} vs {right}"
        );
        assert_eq!(
            version(right).cmp(&version(left)),
            expected.reverse(),
            "{right} vs {left}"
        );
    }

    #[test]
    fn parses_parts() {
        let parsed = version("2:1.2-3-4ubuntu1");
        assert_eq!(parsed.epoch, 2);
        assert_eq!(parsed.upstream, "1.2-3");
        assert_eq!(parsed.revision, "4ubuntu1");
        let parsed = version("1:2:3");
        assert_eq!((parsed.epoch, parsed.upstream.as_str()), (1, "2:3"));
        let parsed = version(" 1.0 ");
        assert_eq!(
            (parsed.upstream.as_str(), parsed.revision.as_str()),
            ("1.0", "")
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["1.0", "1:2.3-4", "2.30-1~bpo1", "0.9+git20200101-1+b2"] {
            assert_eq!(version(text).to_string(), text);
        }
        assert_eq!(version("0:1.0").to_string(), "1.0");
    }

    #[test]
    fn rejects_what_dpkg_rejects() {
        type Check = fn(&VersionError) -> bool;
        let cases: [(&str, Check); 8] = [
            ("", |e| matches!(e, VersionError::Empty)),
            ("1.0 2", |e| matches!(e, VersionError::EmbeddedSpace { .. })),
            (":1.0", |e| matches!(e, VersionError::EmptyEpoch { .. })),
            ("a:1.0", |e| {
                matches!(e, VersionError::EpochNotNumber { .. })
            }),
            ("99999999999:1", |e| {
                matches!(e, VersionError::EpochTooBig { .. })
            }),
            ("1:", |e| {
                matches!(e, VersionError::NothingAfterColon { .. })
            }),
            ("1.0-", |e| matches!(e, VersionError::EmptyRevision { .. })),
            ("-1", |e| matches!(e, VersionError::EmptyUpstream { .. })),
        ];
        for (text, check) in cases {
            let error = text.parse::<Version>().unwrap_err();
            assert!(check(&error), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn accepts_what_dpkg_only_warns_about() {
        let parsed = version("abc_1-x_y");
        assert_eq!(
            parsed.warnings(),
            [
                VersionWarning::UpstreamNotStartingWithDigit,
                VersionWarning::InvalidUpstreamCharacter,
                VersionWarning::InvalidRevisionCharacter
            ]
        );
        assert!(version("1.0+dfsg-1~exp1").warnings().is_empty());
    }

    #[test]
    fn epochs_dominate() {
        assert_order("1:0.1", "9.9", Ordering::Greater);
        assert_order("0:1.0", "1.0", Ordering::Equal);
        assert_order("2:1", "10:0", Ordering::Less);
    }

    #[test]
    fn tilde_sorts_before_everything_including_the_end() {
        assert_order("1.0~rc1", "1.0", Ordering::Less);
        assert_order("1.0~~", "1.0~", Ordering::Less);
        assert_order("1.0~~a", "1.0~", Ordering::Less);
        assert_order("1.0~", "1.0", Ordering::Less);
        assert_order("1.0-1~bpo1", "1.0-1", Ordering::Less);
        assert_order("1.0~rc1", "1.0~beta", Ordering::Greater);
    }

    #[test]
    fn letters_sort_before_other_characters_and_after_the_end() {
        assert_order("1.0a", "1.0", Ordering::Greater);
        assert_order("1.0a", "1.0+", Ordering::Less);
        assert_order("1.0a", "1.0.", Ordering::Less);
        assert_order("1.0+", "1.0.", Ordering::Less);
        assert_order("1.0Z", "1.0a", Ordering::Less);
        assert_order("1.0+dfsg", "1.0", Ordering::Greater);
    }

    #[test]
    fn digit_runs_compare_numerically() {
        assert_order("1.10", "1.9", Ordering::Greater);
        assert_order("1.01", "1.1", Ordering::Equal);
        assert_order("1.001", "1.1", Ordering::Equal);
        assert_order("1.000", "1.0", Ordering::Equal);
        assert_order("10", "9", Ordering::Greater);
        assert_order("1.2.3", "1.2.3.0", Ordering::Less);
        assert_order("20240101", "2024.01.01", Ordering::Greater);
    }

    #[test]
    fn missing_revision_equals_zero() {
        assert_order("1.0", "1.0-0", Ordering::Equal);
        assert_order("1.0", "1.0-00", Ordering::Equal);
        assert_order("1.0", "1.0-1", Ordering::Less);
        assert_order("1.0", "1.0-~", Ordering::Greater);
        assert_order("1.0-0.1", "1.0", Ordering::Greater);
    }

    #[test]
    fn hyphens_in_upstream_are_compared_as_characters() {
        assert_order("1.2-3-1", "1.2-1", Ordering::Greater);
        assert_order("1.2-3-1", "1.2.3-1", Ordering::Less);
    }

    #[test]
    fn real_world_pairs() {
        assert_order("2.36-9+deb12u4", "2.36-9+deb12u10", Ordering::Less);
        assert_order("5.36.0-7+deb12u1", "5.36.0-7", Ordering::Greater);
        assert_order("1:9.18.28-1~deb12u2", "1:9.18.28-1", Ordering::Less);
        assert_order("3.03+dfsg2-8", "3.03+dfsg2-8+b1", Ordering::Less);
        assert_order("6.1.0-18", "6.1.0-9", Ordering::Greater);
        assert_order("1.2.13.dfsg-1", "1.2.13-1", Ordering::Greater);
    }

    #[test]
    fn sorting_is_total_and_stable() {
        let mut versions: Vec<Version> =
            ["1.0", "1.0~rc1", "1:0.5", "1.0-1", "1.0a", "0.9", "1.0+b1"]
                .iter()
                .map(|text| version(text))
                .collect();
        versions.sort();
        let sorted: Vec<String> = versions.iter().map(ToString::to_string).collect();
        assert_eq!(
            sorted,
            ["0.9", "1.0~rc1", "1.0", "1.0-1", "1.0a", "1.0+b1", "1:0.5"]
        );
    }
}
