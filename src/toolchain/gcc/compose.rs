//! Joining a compiler's [`Programs`] and a target sysroot into the
//! [`CrossGcc`] a build uses (`compilers-v1/<key>`):
//!
//! ```text
//! toolchain -> ../../toolchains-v1/<key>     the programs (relative symlink)
//! sysroot   -> ../../sysroots-v3/<key>       the target's packages (relative symlink)
//! bin/<triple>-gcc, -g++, -ld, -ar, …        wrapper scripts
//! xbuild-toolchain.json                      triple, identity, whether there is C++
//! ```
//!
//! Each wrapper finds the directory it lives in, puts the programs' host
//! libraries on `LD_LIBRARY_PATH` and runs the real program; compiler
//! drivers and linkers get `--sysroot`, and the drivers also map the
//! sysroot to `/` and the programs to `/xbuild/toolchain` in file names
//! (`-ffile-prefix-map`), so no cache path reaches a binary's debug
//! information. Before the cache renames it into place the compiler links a test
//! program, and every directory on its include and library search paths
//! must lie inside the programs or the sysroot: the host's headers and
//! libraries are never used.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{
    BUILD_MULTIARCH, CrossGcc, Manifest, Programs, io_error, normalise, relative_path,
    run_tool_with, write_manifest_and_test,
};
use crate::toolchain::ToolchainError;

/// Compiler drivers: their wrappers pass `--sysroot` and the prefix maps.
const DRIVERS: [&str; 6] = ["gcc", "g++", "cpp", "cc", "c++", "gfortran"];

/// Linkers: their wrappers pass `--sysroot`.
const LINKERS: [&str; 3] = ["ld", "ld.bfd", "ld.gold"];

/// Makes the compiler of `programs` with `sysroot` in `work`, an empty
/// directory beside its final place in the cache (so the relative links
/// made here hold there), identified by `identity`.
pub fn compose(
    programs: &Programs,
    sysroot: &Path,
    work: &Path,
    identity: &str,
) -> Result<CrossGcc, ToolchainError> {
    // Relative to where the links will be: the final place, a sibling of
    // `work`.
    let base = canonical(work)?;
    for (name, target) in [
        ("toolchain", &programs.root),
        ("sysroot", &sysroot.to_owned()),
    ] {
        let link = work.join(name);
        let relative = relative_path(&base, &canonical(target)?);
        fs_err::os::unix::fs::symlink(&relative, &link)
            .map_err(|source| io_error(&link, source))?;
    }
    write_wrappers(work, programs)?;
    let manifest = Manifest {
        triple: programs.triple.clone(),
        version: identity.to_owned(),
        cxx: programs.cxx,
    };
    write_manifest_and_test(work, &manifest)?;
    check_search_paths(
        &CrossGcc::at(work, manifest.clone()),
        &[&programs.root, sysroot],
    )?;
    Ok(CrossGcc::at(work, manifest))
}

fn canonical(path: &Path) -> Result<PathBuf, ToolchainError> {
    fs_err::canonicalize(path).map_err(|source| io_error(path, source))
}

/// Writes `bin/<triple>-<tool>` for every `usr/bin/<triple>-<tool>[-<major>]`
/// of the programs, and the `cc`/`c++` aliases.
fn write_wrappers(work: &Path, programs: &Programs) -> Result<(), ToolchainError> {
    let usr_bin = programs.root.join("usr/bin");
    let triple = &programs.triple;
    let prefix = format!("{triple}-");
    let version_suffix = format!("-{}", programs.major);
    // Tool name → real program file name; unversioned names sort first and win.
    let mut tools = std::collections::BTreeMap::new();
    let mut names: Vec<String> = fs_err::read_dir(&usr_bin)
        .map_err(|source| io_error(&usr_bin, source))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let Some(tool) = name.strip_prefix(&prefix) else {
            continue;
        };
        let tool = tool
            .strip_suffix(&version_suffix)
            .unwrap_or(tool)
            .to_owned();
        tools.entry(tool).or_insert(name);
    }
    for (alias, of) in [("cc", "gcc"), ("c++", "g++")] {
        if let Some(program) = tools.get(of).cloned() {
            tools.entry(alias.to_owned()).or_insert(program);
        }
    }
    let bin = work.join("bin");
    fs_err::create_dir_all(&bin).map_err(|source| io_error(&bin, source))?;
    for (tool, program) in &tools {
        let flags = if DRIVERS.contains(&tool.as_str()) {
            " --sysroot=\"$root/sysroot\" -ffile-prefix-map=\"$root/sysroot/\"=/ -ffile-prefix-map=\"$toolchain/\"=/xbuild/toolchain/"
        } else if LINKERS.contains(&tool.as_str()) {
            " --sysroot=\"$root/sysroot\""
        } else {
            ""
        };
        let script = format!(
            "#!/bin/sh\n\
             # Written by xbuild: runs usr/bin/{program} of the compiler programs\n\
             # linked beside this script's directory, wherever that is.\n\
             root=$(readlink -f -- \"$0\") || exit 127\n\
             root=${{root%/*}}\n\
             root=${{root%/*}}\n\
             toolchain=$(readlink -f -- \"$root/toolchain\") || exit 127\n\
             LD_LIBRARY_PATH=\"$toolchain/usr/lib/{BUILD_MULTIARCH}:$toolchain/lib/{BUILD_MULTIARCH}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n\
             export LD_LIBRARY_PATH\n\
             exec \"$toolchain/usr/bin/{program}\"{flags} \"$@\"\n"
        );
        let path = bin.join(format!("{prefix}{tool}"));
        fs_err::write(&path, script).map_err(|source| io_error(&path, source))?;
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|source| io_error(&path, source))?;
    }
    Ok(())
}

/// Fails unless every include and library directory the compiler searches
/// lies inside `gcc.root` or one of `inside`.
fn check_search_paths(gcc: &CrossGcc, inside: &[&Path]) -> Result<(), ToolchainError> {
    let mut allowed = vec![canonical(&gcc.root)?];
    for path in inside {
        allowed.push(canonical(path)?);
    }
    let check = |directory: &str, what: &'static str| -> Result<(), ToolchainError> {
        let directory = directory.trim();
        if directory.is_empty() {
            return Ok(());
        }
        let path = Path::new("/").join(normalise(Path::new(directory)));
        let resolved = fs_err::canonicalize(&path).unwrap_or(path.clone());
        if allowed
            .iter()
            .any(|root| path.starts_with(root) || resolved.starts_with(root))
        {
            Ok(())
        } else {
            Err(ToolchainError::HostPathUsed {
                compiler: gcc.cc.clone(),
                directory: path,
                what,
            })
        }
    };
    let mut compilers = vec![(gcc.cc.clone(), "c")];
    if let Some(cxx) = &gcc.cxx {
        compilers.push((cxx.clone(), "c++"));
    }
    for (compiler, language) in compilers {
        let (_, verbose) =
            run_tool_with(&compiler, &["-E", "-v", "-x", language, "-"], Some(""), &[])?;
        let directories = verbose
            .lines()
            .skip_while(|line| !line.starts_with("#include <...> search starts here:"))
            .skip(1)
            .take_while(|line| !line.starts_with("End of search list."));
        for directory in directories {
            check(directory, "include directory")?;
        }
    }
    let (search, _) = run_tool_with(&gcc.cc, &["-print-search-dirs"], None, &[])?;
    for line in search.lines() {
        if let Some(list) = line.strip_prefix("libraries: ") {
            for directory in list.trim_start_matches('=').split(':') {
                check(directory, "library directory")?;
            }
        }
    }
    Ok(())
}
