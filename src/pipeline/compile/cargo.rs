//! The cargo side of a build: whether a project compiles C at all (its
//! lockfile names a crate that drives a C compiler), everything besides the
//! sources that changes cargo's output (for the build's key), and running
//! cargo for the target with the compiler and sysroot the plan chose.
//!
//! A build's key covers, besides its sources and compilers: the manifest's
//! cargo settings (profile, features, binaries, strip); the environment
//! variables cargo, rustc and the `cc` crate read (`RUSTFLAGS` and its
//! kin, `CARGO_PROFILE_*`, `RUSTC_WRAPPER`, `CC`/`CFLAGS`/`CXXFLAGS`/`AR`
//! and their per-target forms); the `.cargo/config.toml` files cargo would
//! read (by content); and the variables the project's build scripts said
//! they depend on (`rerun-if-env-changed`), recorded from its last build.
//! A hit must give the bytes a build would.

use super::super::resolve::ResolveContext;
use super::io_error;
use crate::Error;
use crate::build::cargo::{self, CargoTarget, Linker};
use crate::cache::{Bucket, Cache, EntryMeta};
use crate::manifest::{BuildSpec, CargoOptions};
use crate::plan::KeyBuilder;
use crate::plan::explain::Inputs;
use crate::platform::{Libc, Platform};
use crate::toolchain::CrossGcc;
use fs_err as fs;
use std::path::Path;

/// Crates that compile C (or C++) for the target when they build.
const C_COMPILING_CRATES: [&str; 3] = ["cc", "cmake", "autotools"];

/// Whether the cargo project at `project` may compile C: its `Cargo.lock`
/// (the project's, or its workspace's above it) names a crate that drives
/// a C compiler. Without a lockfile, it may.
pub(super) fn compiles_c(project: &Path) -> bool {
    let Some(lockfile) = project
        .ancestors()
        .map(|directory| directory.join("Cargo.lock"))
        .find(|path| path.is_file())
    else {
        return true;
    };
    let Ok(text) = fs::read_to_string(&lockfile) else {
        return true;
    };
    text.lines().any(|line| {
        line.strip_prefix("name = \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .is_some_and(|name| C_COMPILING_CRATES.contains(&name))
    })
}

/// Environment variables that change what cargo, rustc or the `cc` crate
/// make for `triple` (besides those starting with `CARGO_PROFILE_`).
fn output_variables(triple: &str) -> Vec<String> {
    let underscored = triple.replace(['-', '.'], "_");
    let upper = underscored.to_uppercase();
    let mut names: Vec<String> = [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTDOCFLAGS",
        "CRATE_CC_NO_DEFAULTS",
    ]
    .map(String::from)
    .to_vec();
    names.push(format!("CARGO_TARGET_{upper}_RUSTFLAGS"));
    names.push(format!("CARGO_TARGET_{upper}_LINKER"));
    for tool in [
        "CC", "CFLAGS", "CXX", "CXXFLAGS", "AR", "ARFLAGS", "CPPFLAGS", "LDFLAGS",
    ] {
        names.push(tool.to_owned());
        names.push(format!("TARGET_{tool}"));
        names.push(format!("{tool}_{triple}"));
        names.push(format!("{tool}_{underscored}"));
    }
    names
}

/// `NAME=value` of every variable among `names` (and `CARGO_PROFILE_*`)
/// that `env` has, sorted.
fn variables_text(names: &[String], env: &[(String, String)], profiles: bool) -> String {
    let mut set: Vec<String> = env
        .iter()
        .filter(|(name, value)| {
            !value.is_empty()
                && (names.contains(name) || (profiles && name.starts_with("CARGO_PROFILE_")))
        })
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    set.sort();
    set.dedup();
    set.join(" ")
}

/// The process environment, as (name, value) pairs.
fn process_environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// The build-script variables recorded for the build `name`.
fn recorded_variables(cache: &Cache, name: &str) -> Result<Vec<String>, Error> {
    Ok(cache
        .get_entry::<Vec<String>>(Bucket::CargoBuildScriptEnv, &variables_key(name))?
        .unwrap_or_default())
}

fn variables_key(name: &str) -> crate::hash::Sha256Digest {
    KeyBuilder::new("cargo-build-script-env")
        .text("build", name)
        .finish()
}

/// The inputs of a cargo build's key beyond its sources and compilers (see
/// the module doc); `name` is the build's name (for recorded variables).
pub(super) fn key_inputs(
    cache: &Cache,
    build: &BuildSpec,
    project: &Path,
    triple: &str,
    name: &str,
) -> Result<(Inputs, Vec<String>), Error> {
    let options = &build.cargo;
    let environment = process_environment();
    let home = cargo::cargo_home();
    let configs = crate::build::cargo_config::config_files(project, home.as_deref());
    let recorded = recorded_variables(cache, name)?;
    let mut inputs: Inputs = vec![
        ("cargo-options".into(), options_text(options)),
        (
            "cargo-env".into(),
            variables_text(&output_variables(triple), &environment, true),
        ),
        (
            "cargo-config".into(),
            configs
                .iter()
                .map(|file| file.digest.oci())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ];
    inputs.push(build_script_input(&recorded, &environment));
    Ok((inputs, recorded))
}

fn build_script_input(variables: &[String], environment: &[(String, String)]) -> (String, String) {
    let values: Vec<String> = variables
        .iter()
        .map(|name| {
            let value = environment
                .iter()
                .find(|(candidate, _)| candidate == name)
                .map_or("", |(_, value)| value.as_str());
            format!("{name}={value}")
        })
        .collect();
    ("build-script-env".into(), values.join(" "))
}

/// The inputs of a build once its build scripts said which variables they
/// read: `inputs` with those variables' values.
pub(super) fn with_build_script_variables(inputs: &Inputs, variables: &[String]) -> Inputs {
    let environment = process_environment();
    let (name, value) = build_script_input(variables, &environment);
    inputs
        .iter()
        .map(|(input, old)| {
            if *input == name {
                (input.clone(), value.clone())
            } else {
                (input.clone(), old.clone())
            }
        })
        .collect()
}

/// Records the variables the build `name`'s scripts read.
pub(super) fn record_variables(
    cache: &Cache,
    name: &str,
    variables: &[String],
) -> Result<(), Error> {
    Ok(cache.put_entry(
        Bucket::CargoBuildScriptEnv,
        &variables_key(name),
        &variables.to_vec(),
        EntryMeta::any(),
    )?)
}

fn options_text(options: &CargoOptions) -> String {
    format!(
        "profile={} features={} no-default-features={} package={} bins={} strip={}",
        options.profile,
        options.features.join(","),
        options.no_default_features,
        options.package.as_deref().unwrap_or(""),
        options.bins.join(","),
        options.strip.name()
    )
}

/// The variables the build scripts of a build in `target_dir` declared
/// with `rerun-if-env-changed`, sorted.
fn build_script_variables(target_dir: &Path, triple: &str, profile: &str) -> Vec<String> {
    let profile_directory = match profile {
        "release" | "bench" => "release",
        "dev" | "test" => "debug",
        other => other,
    };
    let mut names = Vec::new();
    for build in [
        target_dir
            .join(triple)
            .join(profile_directory)
            .join("build"),
        target_dir.join(profile_directory).join("build"),
    ] {
        let Ok(entries) = fs::read_dir(&build) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(text) = fs::read_to_string(entry.path().join("output")) else {
                continue;
            };
            for line in text.lines() {
                let value = line
                    .strip_prefix("cargo::rerun-if-env-changed=")
                    .or_else(|| line.strip_prefix("cargo:rerun-if-env-changed="));
                if let Some(name) = value {
                    names.push(name.trim().to_owned());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// `cargo build` of the project in `tree` for `platform`, its binaries
/// copied to `staging/usr/local/bin`. `gcc` compiles the C code (and links,
/// for glibc targets); musl targets link with rust-lld. Returns the
/// variables the project's build scripts read.
pub(super) fn build(
    context: &ResolveContext,
    platform: &Platform,
    gcc: Option<&CrossGcc>,
    spec: &CargoOptions,
    tree: &Path,
    staging: &Path,
) -> Result<Vec<String>, Error> {
    let options = context.options;
    let cache = context.cache;
    let triple = platform.rust_triple().to_owned();
    let linker = match (platform.libc, gcc) {
        (Libc::Gnu, Some(gcc)) => Linker::Gcc(gcc.cc.clone()),
        _ => Linker::RustLld,
    };
    let mut cargo_target = CargoTarget::new(&triple).with_linker(linker);
    if let Some(gcc) = gcc {
        cargo_target = cargo_target.with_c_tools(Some(&gcc.cc), gcc.cxx.as_deref(), Some(&gcc.ar));
        if platform.libc == Libc::Gnu {
            cargo_target = cargo_target.with_sysroot(&gcc.sysroot, &platform.multiarch);
        }
    }
    let target_dir = cache.scratch_dir(
        Bucket::CargoTarget,
        &KeyBuilder::new("cargo-target-dir")
            .text("project", &tree.display().to_string())
            .finish(),
    )?;
    let cargo_options = cargo::BuildOptions {
        profile: spec.profile.clone(),
        no_default_features: spec.no_default_features,
        features: spec.features.clone(),
        package: spec.package.clone(),
        bins: spec.bins.clone(),
        strip: Some(spec.strip),
        quiet: options.quiet,
        source_date_epoch: Some(options.epoch),
    };
    let built = cargo::build_reporting(
        tree,
        &cargo_target,
        &target_dir,
        &cargo_options,
        context.reporter,
    )
    .map_err(|source| Error::Build {
        target: platform.name.clone(),
        source,
    })?;
    let bin = staging.join("usr/local/bin");
    fs::create_dir_all(&bin).map_err(io_error(&bin))?;
    for binary in &built.binaries {
        let destination = bin.join(&binary.name);
        fs::copy(&binary.path, &destination).map_err(io_error(&destination))?;
    }
    Ok(build_script_variables(&target_dir, &triple, &spec.profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockfile_naming_cc_means_c_and_one_without_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("member");
        fs::create_dir_all(&project).unwrap();
        // No lockfile anywhere up to the temp dir: assume C.
        assert!(
            compiles_c(&project)
                || dir
                    .path()
                    .ancestors()
                    .any(|d| d.join("Cargo.lock").is_file())
        );
        fs::write(
            dir.path().join("Cargo.lock"),
            "version = 4\n\n[[package]]\nname = \"member\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        assert!(!compiles_c(&project));
        fs::write(
            dir.path().join("Cargo.lock"),
            "version = 4\n\n[[package]]\nname = \"cc\"\nversion = \"1.2.0\"\n",
        )
        .unwrap();
        assert!(compiles_c(&project));
    }
}
