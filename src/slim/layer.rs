//! A layer filtered to the kept set: the entries of a package (or build)
//! layer whose paths are kept, with their headers unchanged — owners,
//! modes and times as the full image has them — gzip at the build's
//! level, hashed while written.
//!
//! A kept hard link whose target is not kept brings its target along
//! (perl's `/usr/bin/perl` is a link to `perl5.36.0`): tar links name an
//! earlier entry of the same layer.

use crate::hash::HashingWriter;
use crate::image::layer::LayerOutput;
use std::collections::BTreeSet;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

/// The image path of a tar entry: `./usr/bin/` → `/usr/bin`.
fn image_path(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    super::trace::normalize("/", &text)
}

fn open(layer: &Path) -> io::Result<Box<dyn Read>> {
    let mut file = BufReader::new(fs_err::File::open(layer)?);
    let magic = {
        use io::BufRead;
        file.fill_buf()?.get(..4).map(<[u8]>::to_vec)
    };
    Ok(match magic.as_deref() {
        Some([0x1f, 0x8b, ..]) => Box::new(flate2::read::GzDecoder::new(file)),
        Some([0x28, 0xb5, 0x2f, 0xfd]) => Box::new(zstd::Decoder::with_buffer(file)?),
        _ => Box::new(file),
    })
}

/// Hard links of the layer whose link is kept: their targets.
fn link_targets(layer: &Path, kept: &BTreeSet<String>) -> io::Result<BTreeSet<String>> {
    let mut targets = BTreeSet::new();
    let mut archive = tar::Archive::new(open(layer)?);
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Link {
            continue;
        }
        if !kept.contains(&image_path(&entry.path_bytes())) {
            continue;
        }
        if let Some(target) = entry.link_name_bytes() {
            targets.insert(image_path(&target));
        }
    }
    Ok(targets)
}

/// Writes the entries of `layer` that `kept` holds into `out`; `None`
/// when none is kept (the slim image leaves the layer out).
pub fn filter_layer<W: Write>(
    layer: &Path,
    kept: &BTreeSet<String>,
    compression_level: u32,
    out: W,
) -> io::Result<Option<LayerOutput>> {
    let extra = link_targets(layer, kept)?;
    let keeps = |path: &str| kept.contains(path) || extra.contains(path);
    let gzip = flate2::GzBuilder::new().mtime(0).write(
        HashingWriter::new(out),
        flate2::Compression::new(compression_level.min(9)),
    );
    let mut builder = tar::Builder::new(HashingWriter::new(gzip));
    let mut entries = 0;
    let mut archive = tar::Archive::new(open(layer)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path_bytes().into_owned();
        if !keeps(&image_path(&name)) {
            continue;
        }
        let mut header = entry.header().clone();
        let name = String::from_utf8_lossy(&name).into_owned();
        match header.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|target| String::from_utf8_lossy(&target).into_owned())
                    .unwrap_or_default();
                builder.append_link(&mut header, &name, &target)?;
            }
            _ => {
                builder.append_data(&mut header, &name, &mut entry)?;
            }
        }
        entries += 1;
    }
    let uncompressed = builder.into_inner()?;
    let (gzip, diff_id, uncompressed_size) = uncompressed.finish();
    let compressed = gzip.finish()?;
    let (mut out, digest, size) = compressed.finish();
    out.flush()?;
    if entries == 0 {
        return Ok(None);
    }
    Ok(Some(LayerOutput {
        diff_id,
        digest,
        size,
        uncompressed_size,
        entries,
        skipped_scripts: Vec::new(),
        left_out_bytes: 0,
        left_out_entries: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("layer.tar");
        let mut builder = tar::Builder::new(fs_err::File::create(&path).unwrap());
        let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(0o755);
            header.set_uid(7);
            header.set_size(data.len() as u64);
            match link {
                Some(link) => builder.append_link(&mut header, name, link).unwrap(),
                None => builder.append_data(&mut header, name, data).unwrap(),
            }
        };
        add("./usr/", tar::EntryType::Directory, b"", None);
        add("./usr/bin/", tar::EntryType::Directory, b"", None);
        add(
            "./usr/bin/perl5.36.0",
            tar::EntryType::Regular,
            b"elf",
            None,
        );
        add(
            "./usr/bin/perl",
            tar::EntryType::Link,
            b"",
            Some("./usr/bin/perl5.36.0"),
        );
        add("./usr/bin/other", tar::EntryType::Regular, b"x", None);
        path
    }

    fn names(bytes: &[u8]) -> Vec<(String, u64)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    entry.header().uid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn kept_entries_keep_headers_and_hard_links_bring_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer(dir.path());
        let kept: BTreeSet<String> = ["/usr", "/usr/bin", "/usr/bin/perl"]
            .map(str::to_owned)
            .into();
        let mut bytes = Vec::new();
        let output = filter_layer(&layer, &kept, 6, &mut bytes).unwrap().unwrap();
        assert_eq!(
            names(&bytes),
            [
                ("usr/".to_owned(), 7),
                ("usr/bin/".to_owned(), 7),
                ("usr/bin/perl5.36.0".to_owned(), 7),
                ("usr/bin/perl".to_owned(), 7),
            ]
        );
        assert_eq!(output.entries, 4);
        assert_eq!(output.size, bytes.len() as u64);
        let none = filter_layer(&layer, &BTreeSet::new(), 6, io::sink()).unwrap();
        assert!(none.is_none());
    }
}
