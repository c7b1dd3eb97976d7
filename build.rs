//! Embeds every `targets/*.toml` platform description into the binary.
//!
//! Writes `$OUT_DIR/builtin_targets.rs`, a `BUILTIN_TARGETS: &[(&str, &str)]`
//! of (file name, contents) pairs sorted by file name, each contents an
//! `include_str!` of the file; `src/platform.rs` includes it. Adding a target
//! is adding a file: cargo reruns this script when `targets/` changes.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_directory = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let output_directory = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let targets_directory = manifest_directory.join("targets");
    println!("cargo:rerun-if-changed=targets");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&targets_directory)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", targets_directory.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|error| {
                    panic!("cannot read {}: {error}", targets_directory.display())
                })
                .path()
        })
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "toml")
        })
        .collect();
    files.sort();

    let mut generated = String::from(
        "/// Built-in platform descriptions: (file name, contents), sorted by file name.\n\
         const BUILTIN_TARGETS: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        let file_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_else(|| panic!("target file name is not UTF-8: {}", path.display()));
        let absolute = path
            .to_str()
            .unwrap_or_else(|| panic!("target file path is not UTF-8: {}", path.display()));
        writeln!(
            generated,
            "    ({file_name:?}, include_str!({absolute:?})),"
        )
        .expect("writing to a String cannot fail");
    }
    generated.push_str("];\n");

    let output = output_directory.join("builtin_targets.rs");
    std::fs::write(&output, generated)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", output.display()));
}
