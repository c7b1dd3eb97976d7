//! Why a node misses the cache: its named inputs are compared with those of
//! the cached entries of the same name (the same build of the same project
//! for the same target, at earlier inputs), and the nearest one — fewest
//! differing inputs — says what changed.

use serde::{Deserialize, Serialize};

/// A node's named inputs, in key order: what its key is computed from.
pub type Inputs = Vec<(String, String)>;

/// One input that differs from the nearest cached entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub input: String,
    /// Its value in the nearest cached entry (`None`: that entry lacks it).
    pub cached: Option<String>,
    /// Its value now (`None`: no longer an input).
    pub now: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_owned());
        write!(
            f,
            "{}: {} → {}",
            self.input,
            show(&self.cached),
            show(&self.now)
        )
    }
}

/// The differences between `now` and the nearest of `cached` (fewest
/// differing inputs; the latest among equals). `None` when nothing of this
/// name was ever cached.
pub fn nearest(now: &Inputs, cached: &[Inputs]) -> Option<Vec<Difference>> {
    cached
        .iter()
        .rev()
        .map(|entry| differences(entry, now))
        .min_by_key(|differences| differences.len())
}

/// Input-by-input comparison of two input lists.
pub fn differences(cached: &Inputs, now: &Inputs) -> Vec<Difference> {
    let mut names: Vec<&String> = cached
        .iter()
        .chain(now.iter())
        .map(|(name, _)| name)
        .collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(*name));
    let lookup = |inputs: &Inputs, name: &str| {
        inputs
            .iter()
            .find(|(input, _)| input == name)
            .map(|(_, value)| value.clone())
    };
    names
        .into_iter()
        .filter_map(|name| {
            let (before, after) = (lookup(cached, name), lookup(now, name));
            (before != after).then(|| Difference {
                input: name.clone(),
                cached: before,
                now: after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn the_nearest_entry_names_exactly_what_changed() {
        let now = inputs(&[
            ("source", "s2"),
            ("rustc", "1.95"),
            ("target", "aarch64-linux"),
        ]);
        let old_compiler = inputs(&[
            ("source", "s1"),
            ("rustc", "1.94"),
            ("target", "aarch64-linux"),
        ]);
        let old_source = inputs(&[
            ("source", "s1"),
            ("rustc", "1.95"),
            ("target", "aarch64-linux"),
        ]);
        let found = nearest(&now, &[old_compiler, old_source]).unwrap();
        assert_eq!(
            found,
            vec![Difference {
                input: "source".into(),
                cached: Some("s1".into()),
                now: Some("s2".into())
            }]
        );
        assert_eq!(found[0].to_string(), "source: s1 → s2");
    }

    #[test]
    fn added_and_removed_inputs_count_as_differences() {
        let now = inputs(&[("a", "1"), ("new", "x")]);
        let cached = inputs(&[("a", "1"), ("gone", "y")]);
        let found = differences(&cached, &now);
        assert_eq!(found.len(), 2);
        assert!(nearest(&now, &[]).is_none());
    }
}
