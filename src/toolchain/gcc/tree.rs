//! Turning unpacked compiler packages into relocatable [`Programs`]:
//! absolute symlinks made relative inside the tree, binutils linked where
//! GCC looks for them (`usr/<triple>/bin/as`, which Debian's native
//! binutils does not ship, so that a native GCC never falls back to the
//! host's `as` and `ld` on the `PATH`), the description written and a test
//! file compiled before the cache renames the tree into place.

use std::path::Path;

use super::{PROGRAMS_FILE, Programs, io_error, run_tool_with};
use crate::platform::Platform;
use crate::toolchain::{ToolchainError, relativize_symlinks};

/// binutils programs GCC runs by their plain names from
/// `usr/<triple>/bin/`.
const TOOL_DIRECTORY_PROGRAMS: [&str; 11] = [
    "as", "ld", "ld.bfd", "ld.gold", "ar", "nm", "objcopy", "objdump", "ranlib", "readelf", "strip",
];

/// Fixes up the packages unpacked in `work` (see the module doc), which
/// the cache then renames into place.
pub(super) fn finish_programs(work: &Path, target: &Platform) -> Result<Programs, ToolchainError> {
    let triple = target.gnu_triple.as_str();
    let missing = |what| ToolchainError::Missing {
        root: work.to_owned(),
        triple: triple.to_owned(),
        what,
    };
    let major = driver_major_version(work, triple)
        .ok_or_else(|| missing("GCC driver (gcc-<version>-<triple>)"))?;
    relativize_symlinks(work, work)?;
    let usr_bin = work.join("usr/bin");
    if !usr_bin.join(format!("{triple}-as")).exists() {
        return Err(missing("assembler (binutils-<triple>)"));
    }
    link_tool_directory(work, triple)?;
    let programs = Programs {
        root: work.to_owned(),
        triple: triple.to_owned(),
        cxx: usr_bin.join(format!("{triple}-g++-{major}")).exists(),
        major,
    };
    let description = work.join(PROGRAMS_FILE);
    let json = serde_json::to_vec_pretty(&programs).expect("programs always serialize");
    fs_err::write(&description, json).map_err(|source| io_error(&description, source))?;
    compile_test(&programs)?;
    Ok(programs)
}

/// Links `usr/<triple>/bin/<tool>` to `usr/bin/<triple>-<tool>` for the
/// binutils programs GCC looks for there, where the packages did not.
pub(super) fn link_tool_directory(work: &Path, triple: &str) -> Result<(), ToolchainError> {
    let usr_bin = work.join("usr/bin");
    let tool_directory = work.join("usr").join(triple).join("bin");
    fs_err::create_dir_all(&tool_directory).map_err(|source| io_error(&tool_directory, source))?;
    for tool in TOOL_DIRECTORY_PROGRAMS {
        let link = tool_directory.join(tool);
        if usr_bin.join(format!("{triple}-{tool}")).exists()
            && fs_err::symlink_metadata(&link).is_err()
        {
            fs_err::os::unix::fs::symlink(format!("../../bin/{triple}-{tool}"), &link)
                .map_err(|source| io_error(&link, source))?;
        }
    }
    Ok(())
}

/// Compiles and assembles a file that includes nothing: the driver, `cc1`,
/// the assembler and the host libraries they load all work. (Linking needs
/// a sysroot; [`super::compose`] tests that.)
fn compile_test(programs: &Programs) -> Result<(), ToolchainError> {
    let object = programs.root.join(".xbuild-compile-test.o");
    let object_argument = object.to_string_lossy().into_owned();
    let library_path = programs.library_path();
    let result = run_tool_with(
        &programs.driver(),
        &["-O2", "-c", "-x", "c", "-", "-o", &object_argument],
        Some("int xbuild_add(int a, int b) { return a + b; }\n"),
        &[("LD_LIBRARY_PATH", &library_path)],
    );
    let _ = fs_err::remove_file(&object);
    result.map(|_| ())
}

/// The major version of the newest `usr/bin/<triple>-gcc-<major>` driver.
pub(super) fn driver_major_version(work: &Path, triple: &str) -> Option<String> {
    let prefix = format!("{triple}-gcc-");
    let entries = fs_err::read_dir(work.join("usr/bin")).ok()?;
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let major = name.strip_prefix(&prefix)?;
            major.parse::<u32>().ok()
        })
        .max()
        .map(|major| major.to_string())
}
