//! Saying why two builds that should be byte-identical are not, in the
//! manner of diffoscope: two byte strings are compared `cmp -l` style
//! ([`bytes_difference`]), and two OCI layouts are compared manifest,
//! config and layer by layer, down to the tar entries that differ
//! ([`layout_differences`]). Every difference names which of the given
//! machine-specific strings (the project, cache and output paths of each
//! build) occur in the bytes, since a leaked path is the usual cause.

use std::collections::BTreeMap;

use serde_json::Value;

use super::oci::{LayerEntry, Layout, tar_entries};

/// How many differing offsets a difference lists.
const SHOWN_OFFSETS: usize = 8;
/// Bytes of context shown on each side of the first difference.
const CONTEXT: usize = 48;

/// `None` when `left == right`; otherwise the sizes, how many bytes of the
/// common length differ, the first offsets with both bytes (as `cmp -l`
/// prints them, but 0-based and in hex), and the text around the first one.
pub fn bytes_difference(left: &[u8], right: &[u8]) -> Option<String> {
    if left == right {
        return None;
    }
    let offsets: Vec<usize> = left
        .iter()
        .zip(right)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(offset, _)| offset)
        .collect();
    let mut text = format!(
        "{} vs {} bytes; {} of the first {} differ",
        left.len(),
        right.len(),
        offsets.len(),
        left.len().min(right.len())
    );
    let shown: Vec<String> = offsets
        .iter()
        .take(SHOWN_OFFSETS)
        .map(|&offset| format!("0x{offset:x}: {:02x} {:02x}", left[offset], right[offset]))
        .collect();
    if !shown.is_empty() {
        text.push_str(&format!("; at {}", shown.join(", ")));
    }
    let first = offsets
        .first()
        .copied()
        .unwrap_or_else(|| left.len().min(right.len()));
    text.push_str(&format!(
        "\n      left:  {}\n      right: {}",
        excerpt(left, first),
        excerpt(right, first)
    ));
    Some(text)
}

/// The bytes around `offset`, printable ASCII as is and the rest escaped.
fn excerpt(bytes: &[u8], offset: usize) -> String {
    let start = offset.saturating_sub(CONTEXT);
    let end = (offset + CONTEXT).min(bytes.len());
    bytes[start..end]
        .iter()
        .flat_map(|&byte| std::ascii::escape_default(byte))
        .map(char::from)
        .collect()
}

/// Which of `suspects` occur in `bytes`.
pub fn leaked<'a>(bytes: &[u8], suspects: &'a [String]) -> Vec<&'a str> {
    suspects
        .iter()
        .filter(|suspect| {
            !suspect.is_empty()
                && bytes
                    .windows(suspect.len())
                    .any(|window| window == suspect.as_bytes())
        })
        .map(String::as_str)
        .collect()
}

/// [`bytes_difference`] followed by the suspects found on either side.
fn explained(left: &[u8], right: &[u8], suspects: &[String]) -> Option<String> {
    let mut text = bytes_difference(left, right)?;
    for (side, bytes) in [("left", left), ("right", right)] {
        let found = leaked(bytes, suspects);
        if !found.is_empty() {
            text.push_str(&format!("\n      {side} contains {found:?}"));
        }
    }
    Some(text)
}

/// The differences between the image `left_manifest` of the layout `left`
/// and `right_manifest` of `right`, one line (or a few) each; empty when
/// the manifests are the same bytes.
pub fn layout_differences(
    left: &Layout,
    left_manifest: &str,
    right: &Layout,
    right_manifest: &str,
    suspects: &[String],
) -> Vec<String> {
    let mut found = Vec::new();
    if left_manifest == right_manifest {
        return found;
    }
    let left_bytes = left.blob(left_manifest);
    let right_bytes = right.blob(right_manifest);
    if let Some(text) = explained(&left_bytes, &right_bytes, suspects) {
        found.push(format!(
            "manifest {left_manifest} vs {right_manifest}: {text}"
        ));
    }
    let left_json: Value = serde_json::from_slice(&left_bytes).expect("manifest is JSON");
    let right_json: Value = serde_json::from_slice(&right_bytes).expect("manifest is JSON");
    json_differences("manifest", &left_json, &right_json, &mut found);

    let config_digest = |manifest: &Value| {
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest")
            .to_owned()
    };
    let (left_config, right_config) = (config_digest(&left_json), config_digest(&right_json));
    if left_config != right_config {
        let left_bytes = left.blob(&left_config);
        let right_bytes = right.blob(&right_config);
        if let Some(text) = explained(&left_bytes, &right_bytes, suspects) {
            found.push(format!("config {left_config} vs {right_config}: {text}"));
        }
        json_differences(
            "config",
            &serde_json::from_slice(&left_bytes).expect("config is JSON"),
            &serde_json::from_slice(&right_bytes).expect("config is JSON"),
            &mut found,
        );
    }

    let layers = |manifest: &Value| manifest["layers"].as_array().cloned().unwrap_or_default();
    let (left_layers, right_layers) = (layers(&left_json), layers(&right_json));
    if left_layers.len() != right_layers.len() {
        found.push(format!(
            "{} layers vs {}",
            left_layers.len(),
            right_layers.len()
        ));
    }
    for (index, (left_layer, right_layer)) in left_layers.iter().zip(&right_layers).enumerate() {
        if left_layer["digest"] != right_layer["digest"] {
            found.extend(
                layer_differences(left, left_layer, right, right_layer, suspects)
                    .into_iter()
                    .map(|text| format!("layer {index}: {text}")),
            );
        }
    }
    found
}

/// Field-by-field differences of two JSON documents, by JSON pointer.
fn json_differences(at: &str, left: &Value, right: &Value, found: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(left_map), Value::Object(right_map)) => {
            let keys: std::collections::BTreeSet<&String> =
                left_map.keys().chain(right_map.keys()).collect();
            for key in keys {
                json_differences(
                    &format!("{at}/{key}"),
                    left_map.get(key).unwrap_or(&Value::Null),
                    right_map.get(key).unwrap_or(&Value::Null),
                    found,
                );
            }
        }
        (Value::Array(left_items), Value::Array(right_items))
            if left_items.len() == right_items.len() =>
        {
            for (index, (left_item, right_item)) in left_items.iter().zip(right_items).enumerate() {
                json_differences(&format!("{at}/{index}"), left_item, right_item, found);
            }
        }
        _ if left != right => found.push(format!("{at}: {left} vs {right}")),
        _ => {}
    }
}

/// Why two layer blobs differ: entries only on one side, then entries whose
/// metadata or contents differ; or, when the entries are the same, the tar
/// stream or just its compression.
pub fn layer_differences(
    left: &Layout,
    left_layer: &Value,
    right: &Layout,
    right_layer: &Value,
    suspects: &[String],
) -> Vec<String> {
    let mut found = Vec::new();
    let left_tar = left.layer_tar(left_layer);
    let right_tar = right.layer_tar(right_layer);
    let left_entries = tar_entries(&left_tar);
    let right_entries = tar_entries(&right_tar);
    let order = |entries: &[LayerEntry]| -> Vec<String> {
        entries.iter().map(|entry| entry.path.clone()).collect()
    };
    let (left_order, right_order) = (order(&left_entries), order(&right_entries));
    let by_path = |entries: Vec<LayerEntry>| -> BTreeMap<String, LayerEntry> {
        entries
            .into_iter()
            .map(|entry| (entry.path.clone(), entry))
            .collect()
    };
    let left_map = by_path(left_entries);
    let right_map = by_path(right_entries);
    for path in left_map
        .keys()
        .filter(|path| !right_map.contains_key(*path))
    {
        found.push(format!("only left: {path}"));
    }
    for path in right_map
        .keys()
        .filter(|path| !left_map.contains_key(*path))
    {
        found.push(format!("only right: {path}"));
    }
    for (path, left_entry) in &left_map {
        let Some(right_entry) = right_map.get(path) else {
            continue;
        };
        let metadata = |entry: &LayerEntry| {
            format!(
                "{:?} mode {:o} mtime {} uid {} gid {} link {:?}",
                entry.kind, entry.mode, entry.mtime, entry.uid, entry.gid, entry.link_target
            )
        };
        if metadata(left_entry) != metadata(right_entry) {
            found.push(format!(
                "{path}: {} vs {}",
                metadata(left_entry),
                metadata(right_entry)
            ));
        }
        if let Some(text) = explained(&left_entry.contents, &right_entry.contents, suspects) {
            found.push(format!("{path}: contents: {text}"));
        }
    }
    if found.is_empty() && left_order != right_order {
        found.push(format!(
            "the same entries in another order: {left_order:?} vs {right_order:?}"
        ));
    }
    if found.is_empty() {
        match bytes_difference(&left_tar, &right_tar) {
            Some(text) => found.push(format!(
                "the same entries, but the tar streams differ (headers): {text}"
            )),
            None => found.push(format!(
                "the same tar, compressed differently ({} vs {})",
                left_layer["mediaType"], right_layer["mediaType"]
            )),
        }
    }
    found
}
