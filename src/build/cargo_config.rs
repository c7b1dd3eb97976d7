//! What the user's own cargo configuration says for one target, read the
//! way cargo reads it, so that xbuild's flags join the user's instead of
//! replacing them, and so that a build's key covers everything that
//! changes cargo's output.
//!
//! - Config files: `.cargo/config.toml` (or the older `.cargo/config`) in
//!   the directory cargo runs in and every parent, then
//!   `$CARGO_HOME/config.toml`; a value closer to the project wins, arrays
//!   are joined with the closer ones last.
//! - Rustflags: cargo uses the first of `CARGO_ENCODED_RUSTFLAGS`,
//!   `RUSTFLAGS`, the joined `target.<triple>.rustflags` and matching
//!   `target.'cfg(…)'.rustflags` (with `CARGO_TARGET_<TRIPLE>_RUSTFLAGS`),
//!   and `build.rustflags` (with `CARGO_BUILD_RUSTFLAGS`). Setting
//!   `CARGO_ENCODED_RUSTFLAGS` — as xbuild must, to add its own — makes
//!   cargo read nothing else, so [`user_rustflags`] finds what cargo would
//!   have used and xbuild passes both.
//! - A linker the user chose (`CARGO_TARGET_<TRIPLE>_LINKER`,
//!   `target.<triple>.linker`) is kept.

use std::path::{Path, PathBuf};

use crate::hash::Sha256Digest;

/// One config file cargo would read, with its parsed contents.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub digest: Sha256Digest,
    table: toml::Table,
}

/// The config files cargo reads when run in `cwd`, lowest precedence first
/// (`$CARGO_HOME/config.toml`, then the root's down to `cwd`'s). A file that
/// does not parse is kept with no values: cargo itself will say what is
/// wrong with it, and its digest still goes into keys.
pub fn config_files(cwd: &Path, cargo_home: Option<&Path>) -> Vec<ConfigFile> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let candidates = |directory: &Path| {
        [directory.join("config.toml"), directory.join("config")]
            .into_iter()
            .find(|path| path.is_file())
    };
    if let Some(home) = cargo_home
        && let Some(path) = candidates(home)
    {
        paths.push(path);
    }
    let mut project: Vec<PathBuf> = cwd
        .ancestors()
        .filter_map(|directory| candidates(&directory.join(".cargo")))
        .collect();
    project.reverse();
    for path in project {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .filter_map(|path| {
            let bytes = fs_err::read(&path).ok()?;
            let table = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
                .unwrap_or_default();
            Some(ConfigFile {
                digest: Sha256Digest::of(&bytes),
                path,
                table,
            })
        })
        .collect()
}

/// A list setting as cargo reads it: an array of strings, or a string
/// split at whitespace.
fn flags_of(value: &toml::Value) -> Vec<String> {
    match value {
        toml::Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        toml::Value::Array(items) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// `table[first][second]…`.
fn lookup<'a>(table: &'a toml::Table, keys: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = keys.split_first()?;
    let mut value = table.get(*first)?;
    for key in rest {
        value = value.as_table()?.get(*key)?;
    }
    Some(value)
}

/// The `target.'cfg(…)'` table names of the config files.
fn cfg_tables(files: &[ConfigFile]) -> Vec<String> {
    files
        .iter()
        .filter_map(|file| file.table.get("target")?.as_table())
        .flat_map(|targets| targets.keys())
        .filter(|name| name.starts_with("cfg("))
        .cloned()
        .collect()
}

/// The rustflags cargo would use for `triple` without xbuild (see the
/// module doc), given the environment through `env` and, for
/// `target.'cfg(…)'` tables, the target's cfg values from `target_cfg`
/// (`target_arch="aarch64"`, `unix`, …; asked only when such a table
/// exists).
pub fn user_rustflags(
    files: &[ConfigFile],
    triple: &str,
    env: &dyn Fn(&str) -> Option<String>,
    target_cfg: &dyn Fn() -> Vec<String>,
) -> Vec<String> {
    const SEPARATOR: char = '\u{1f}';
    if let Some(encoded) = env("CARGO_ENCODED_RUSTFLAGS") {
        return encoded
            .split(SEPARATOR)
            .filter(|flag| !flag.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(flags) = env("RUSTFLAGS") {
        return flags.split_whitespace().map(str::to_owned).collect();
    }
    let upper = triple.replace(['-', '.'], "_").to_uppercase();
    let mut target_flags: Vec<String> = Vec::new();
    let mut found = false;
    let tables = cfg_tables(files);
    let cfg = if tables.is_empty() {
        Vec::new()
    } else {
        target_cfg()
    };
    let matching: Vec<&String> = tables
        .iter()
        .filter(|name| cfg_matches(name, &cfg))
        .collect();
    for file in files {
        if let Some(value) = lookup(&file.table, &["target", triple, "rustflags"]) {
            found = true;
            target_flags.extend(flags_of(value));
        }
        for name in &matching {
            if let Some(value) = lookup(&file.table, &["target", name, "rustflags"]) {
                found = true;
                target_flags.extend(flags_of(value));
            }
        }
    }
    if let Some(flags) = env(&format!("CARGO_TARGET_{upper}_RUSTFLAGS")) {
        found = true;
        target_flags.extend(flags.split_whitespace().map(str::to_owned));
    }
    if found {
        return target_flags;
    }
    let mut build_flags = Vec::new();
    for file in files {
        if let Some(value) = lookup(&file.table, &["build", "rustflags"]) {
            build_flags.extend(flags_of(value));
        }
    }
    if let Some(flags) = env("CARGO_BUILD_RUSTFLAGS") {
        build_flags.extend(flags.split_whitespace().map(str::to_owned));
    }
    build_flags
}

/// Whether the user chose a linker for `triple` (then xbuild sets none).
pub fn user_linker(
    files: &[ConfigFile],
    triple: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let upper = triple.replace(['-', '.'], "_").to_uppercase();
    env(&format!("CARGO_TARGET_{upper}_LINKER")).or_else(|| {
        files.iter().rev().find_map(|file| {
            lookup(&file.table, &["target", triple, "linker"])?
                .as_str()
                .map(str::to_owned)
        })
    })
}

/// Whether `cfg(…)` (a target table name) holds for a target whose cfg
/// values are `cfg` (`name` or `name="value"` lines, as `rustc --print
/// cfg` prints them). An expression xbuild cannot read does not match.
pub fn cfg_matches(expression: &str, cfg: &[String]) -> bool {
    let Some(inner) = expression
        .trim()
        .strip_prefix("cfg(")
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return false;
    };
    let mut parser = CfgParser {
        text: inner.as_bytes(),
        position: 0,
    };
    match parser.predicate(cfg) {
        Some(result) if parser.at_end() => result,
        _ => false,
    }
}

struct CfgParser<'a> {
    text: &'a [u8],
    position: usize,
}

impl CfgParser<'_> {
    fn skip_spaces(&mut self) {
        while self
            .text
            .get(self.position)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.position += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_spaces();
        self.position == self.text.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_spaces();
        if self.text.get(self.position) == Some(&byte) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn identifier(&mut self) -> Option<String> {
        self.skip_spaces();
        let start = self.position;
        while self
            .text
            .get(self.position)
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
        {
            self.position += 1;
        }
        (self.position > start)
            .then(|| String::from_utf8_lossy(&self.text[start..self.position]).into_owned())
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.position;
        while self
            .text
            .get(self.position)
            .is_some_and(|byte| *byte != b'"')
        {
            self.position += 1;
        }
        let value = String::from_utf8_lossy(&self.text[start..self.position]).into_owned();
        self.eat(b'"').then_some(value)
    }

    fn list(&mut self, cfg: &[String]) -> Option<Vec<bool>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut values = Vec::new();
        if self.eat(b')') {
            return Some(values);
        }
        loop {
            values.push(self.predicate(cfg)?);
            if self.eat(b')') {
                return Some(values);
            }
            if !self.eat(b',') {
                return None;
            }
            if self.eat(b')') {
                return Some(values);
            }
        }
    }

    fn predicate(&mut self, cfg: &[String]) -> Option<bool> {
        let name = self.identifier()?;
        match name.as_str() {
            "all" => Some(self.list(cfg)?.into_iter().all(|value| value)),
            "any" => Some(self.list(cfg)?.into_iter().any(|value| value)),
            "not" => {
                let values = self.list(cfg)?;
                (values.len() == 1).then(|| !values[0])
            }
            _ if self.eat(b'=') => {
                let value = self.string()?;
                Some(cfg.contains(&format!("{name}=\"{value}\"")))
            }
            _ => Some(cfg.contains(&name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn write(path: &Path, text: &str) {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const AARCH64: &str = "aarch64-unknown-linux-gnu";

    fn aarch64_cfg() -> Vec<String> {
        ["target_arch=\"aarch64\"", "target_os=\"linux\"", "unix"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn files_are_found_from_cargo_home_to_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home/.cargo");
        let project = dir.path().join("work/app");
        write(
            &home.join("config.toml"),
            "[build]\nrustflags = [\"-Chome\"]\n",
        );
        write(
            &dir.path().join("work/.cargo/config"),
            "[build]\nrustflags = \"-Cwork\"\n",
        );
        write(
            &project.join(".cargo/config.toml"),
            "[build]\nrustflags = [\"-Capp\"]\n",
        );
        let files = config_files(&project, Some(&home));
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files[0].path, home.join("config.toml"));
        assert_eq!(files[2].path, project.join(".cargo/config.toml"));
        // Arrays join, the project's last.
        let flags = user_rustflags(&files, AARCH64, &env_of(&[]), &Vec::new);
        assert_eq!(flags, ["-Chome", "-Cwork", "-Capp"]);
        // CARGO_BUILD_RUSTFLAGS joins build.rustflags.
        let flags = user_rustflags(
            &files,
            AARCH64,
            &env_of(&[("CARGO_BUILD_RUSTFLAGS", "-Cenv")]),
            &Vec::new,
        );
        assert_eq!(flags.last().unwrap(), "-Cenv");
    }

    #[test]
    fn rustflags_come_from_the_first_source_cargo_reads() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("app");
        write(
            &project.join(".cargo/config.toml"),
            "[build]\nrustflags = [\"-Cbuild\"]\n\
             [target.aarch64-unknown-linux-gnu]\nrustflags = [\"-Ctriple\"]\nlinker = \"my-cc\"\n\
             [target.'cfg(target_arch = \"aarch64\")']\nrustflags = [\"-Ccfg\"]\n\
             [target.'cfg(windows)']\nrustflags = [\"-Cwindows\"]\n",
        );
        let files = config_files(&project, None);
        // Target tables (triple and matching cfg) win over build.rustflags.
        let flags = user_rustflags(&files, AARCH64, &env_of(&[]), &aarch64_cfg);
        assert_eq!(flags, ["-Ctriple", "-Ccfg"]);
        // Another triple: only build.rustflags (no cfg table matches it).
        let flags = user_rustflags(&files, "s390x-unknown-linux-gnu", &env_of(&[]), &Vec::new);
        assert_eq!(flags, ["-Cbuild"]);
        // RUSTFLAGS wins over config; CARGO_ENCODED_RUSTFLAGS over both.
        let rustflags = env_of(&[("RUSTFLAGS", "--cfg x -Copt-level=s")]);
        assert_eq!(
            user_rustflags(&files, AARCH64, &rustflags, &aarch64_cfg),
            ["--cfg", "x", "-Copt-level=s"]
        );
        let encoded = env_of(&[
            ("RUSTFLAGS", "-Cno"),
            ("CARGO_ENCODED_RUSTFLAGS", "-L\u{1f}native=/a dir"),
        ]);
        assert_eq!(
            user_rustflags(&files, AARCH64, &encoded, &aarch64_cfg),
            ["-L", "native=/a dir"]
        );
        assert_eq!(
            user_linker(&files, AARCH64, &env_of(&[])).as_deref(),
            Some("my-cc")
        );
        assert_eq!(
            user_linker(
                &files,
                AARCH64,
                &env_of(&[("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", "env-cc")])
            )
            .as_deref(),
            Some("env-cc")
        );
        assert_eq!(
            user_linker(&files, "s390x-unknown-linux-gnu", &env_of(&[])),
            None
        );
    }

    #[test]
    fn cfg_expressions() {
        let cfg = aarch64_cfg();
        assert!(cfg_matches("cfg(unix)", &cfg));
        assert!(cfg_matches("cfg(target_arch = \"aarch64\")", &cfg));
        assert!(!cfg_matches("cfg(target_arch = \"x86_64\")", &cfg));
        assert!(cfg_matches(
            "cfg(all(unix, not(windows), any(target_os = \"linux\", target_os = \"macos\")))",
            &cfg
        ));
        assert!(!cfg_matches("cfg(not(unix))", &cfg));
        assert!(!cfg_matches("cfg(all(unix,", &cfg));
        assert!(!cfg_matches("aarch64-unknown-linux-gnu", &cfg));
    }
}
