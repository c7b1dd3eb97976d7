//! Debian alternatives without running `update-alternatives`. Images are
//! assembled from `.deb` data and maintainer scripts never run, so an image
//! with only `mawk` would have no `awk`. [`parse_postinst`] reads the
//! `update-alternatives --install` calls of a postinst (reporting, never
//! guessing, every call it cannot read for certain), and [`apply`] does
//! what those calls do, in order, to a staging root: the master and slave
//! links, `etc/alternatives/NAME` and the database
//! `var/lib/dpkg/alternatives/NAME`, byte for byte as dpkg's
//! `update-alternatives` (utils/update-alternatives.c) writes them.
//!
//! How `update-alternatives` decides, and this module with it:
//! - each `--install` loads the database (choices sorted by path, slaves by
//!   name), adds the new slaves of the call at the end and the choice at
//!   the end (or in place of one with the same path), and in auto mode
//!   keeps the current choice unless another has a higher priority: among
//!   choices of the highest priority, the one registered first wins;
//! - a call whose path does not exist fails (the postinst with it);
//! - a slave whose path does not exist gets no links;
//! - slaves no choice has are dropped before the database is written.

mod shell;

use std::collections::HashMap;
use std::fmt;

use shell::{Command, Context, Part, Word};

/// The database directory, relative to the root.
pub const ADMIN_DIRECTORY: &str = "var/lib/dpkg/alternatives";
/// The directory of the `NAME -> PATH` links, relative to the root.
pub const ALTERNATIVES_DIRECTORY: &str = "etc/alternatives";

/// One `update-alternatives --install LINK NAME PATH PRIORITY [--slave …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub link: String,
    pub name: String,
    pub path: String,
    pub priority: i32,
    pub slaves: Vec<Slave>,
    /// The postinst line the call starts on.
    pub line: usize,
}

/// One `--slave LINK NAME PATH` of an [`Install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slave {
    pub link: String,
    pub name: String,
    pub path: String,
}

/// A call that changes a selection rather than registering a choice
/// (`--set NAME PATH`, `--auto NAME`, `--config`, `--all`,
/// `--set-selections`): read and reported, not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub package: String,
    pub line: usize,
    /// The call's words after `update-alternatives`.
    pub arguments: Vec<String>,
}

/// A call (or a script) that cannot be read for certain without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub package: String,
    pub line: usize,
    /// The script's text of the call (its lines, trimmed).
    pub text: String,
    pub reason: String,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} postinst line {}: {}: {}",
            self.package, self.line, self.reason, self.text
        )
    }
}

/// What [`parse_postinst`] read from one script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub installs: Vec<Install>,
    pub selections: Vec<Selection>,
    pub unreadable: Vec<Unreadable>,
}

/// Reads every `update-alternatives` call of `package`'s postinst
/// `script`. `--install` calls become [`Install`]s; `--remove`,
/// `--remove-all` and the read-only actions are ignored (a postinst
/// removes for upgrades); selection changes are [`Selection`]s. A call
/// inside a loop or a function, with an expansion whose value is not
/// certain (a variable not set exactly once, literally, at the top level
/// before the call; command substitution; `$1`…), or with arguments
/// `update-alternatives` would refuse, is [`Unreadable`].
pub fn parse_postinst(package: &str, script: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let lines: Vec<&str> = script.lines().collect();
    let text_of = |first: usize, last: usize| -> String {
        lines
            .get(first.saturating_sub(1)..last.min(lines.len()))
            .unwrap_or_default()
            .iter()
            .map(|line| line.trim().trim_end_matches('\\').trim_end())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let commands = match shell::commands(script) {
        Ok(commands) => commands,
        Err(error) => {
            if script.contains("update-alternatives") {
                parsed.unreadable.push(Unreadable {
                    package: package.to_owned(),
                    line: error.line,
                    text: text_of(error.line, error.line),
                    reason: format!("the script cannot be read: {}", error.message),
                });
            }
            return parsed;
        }
    };
    let variables = Variables::new(&commands);
    for (index, command) in commands.iter().enumerate() {
        let unreadable = |reason: String| Unreadable {
            package: package.to_owned(),
            line: command.first_line,
            text: text_of(command.first_line, command.last_line),
            reason,
        };
        let call = read_call(command, index, &variables);
        if matches!(call, Call::None) || removes_or_reads(command) {
            continue;
        }
        // In a loop or a function, how often and with what a call runs is
        // only known by running the script.
        if let Some(context) = command
            .contexts
            .iter()
            .find(|context| matches!(context, Context::Loop | Context::Function))
        {
            let place = match context {
                Context::Loop => "inside a loop",
                _ => "inside a shell function",
            };
            parsed
                .unreadable
                .push(unreadable(format!("the call is {place}")));
            continue;
        }
        let call = match call {
            Call::None => continue,
            Call::Unreadable(reason) => {
                parsed.unreadable.push(unreadable(reason));
                continue;
            }
            Call::Arguments(arguments) => arguments,
        };
        match read_arguments(&call) {
            Ok(Action::Install(install)) => parsed.installs.push(Install {
                line: command.first_line,
                ..install
            }),
            Ok(Action::Selection) => parsed.selections.push(Selection {
                package: package.to_owned(),
                line: command.first_line,
                arguments: call,
            }),
            Ok(Action::Ignored) => {}
            Err(reason) => parsed.unreadable.push(unreadable(reason)),
        }
    }
    parsed
}

/// The programs a call may be made through.
const PROGRAM_NAMES: [&str; 3] = [
    "update-alternatives",
    "/usr/bin/update-alternatives",
    "/usr/sbin/update-alternatives",
];

/// Actions that change the alternatives database (for the scan of text
/// xbuild does not read as a call, e.g. inside `$(…)`).
const CHANGING_ACTIONS: [&str; 7] = [
    "--install",
    "--set",
    "--auto",
    "--config",
    "--all",
    "--set-selections",
    "--remove-all",
];

/// A literal `--remove`, `--query`… action: `update-alternatives`
/// refuses a second action, so whatever the other words expand to, the
/// call cannot register or select anything.
fn removes_or_reads(command: &Command) -> bool {
    command.words.iter().any(|word| {
        word.bare().is_some_and(|text| {
            matches!(
                text,
                "--remove" | "--query" | "--list" | "--display" | "--get-selections"
            )
        })
    })
}

enum Call {
    /// Not an `update-alternatives` call.
    None,
    Unreadable(String),
    /// The call's expanded arguments after the program name.
    Arguments(Vec<String>),
}

fn read_call(command: &Command, index: usize, variables: &Variables) -> Call {
    // Command substitutions are not read: one that changes alternatives
    // is reported.
    for word in &command.words {
        for part in &word.parts {
            if let Part::Opaque { text, .. } = part
                && mentions_change(text)
            {
                return Call::Unreadable(
                    "an update-alternatives call inside a command substitution".into(),
                );
            }
        }
    }
    let mut words = command
        .words
        .iter()
        .skip_while(|word| word.assignment().is_some());
    let Some(program) = words.next() else {
        return Call::None;
    };
    let expanded_program = variables.expand(program, index);
    let mut program_name = match &expanded_program {
        Ok(fields) if fields.len() == 1 => fields[0].clone(),
        _ => {
            let literal_install = command.words.iter().any(|word| {
                word.bare()
                    .is_some_and(|text| CHANGING_ACTIONS.contains(&text))
            });
            if literal_install {
                return Call::Unreadable(
                    "the program's name is an expansion xbuild cannot resolve".into(),
                );
            }
            return Call::None;
        }
    };
    if program_name == "command" || program_name == "exec" {
        match words.next().map(|word| variables.expand(word, index)) {
            Some(Ok(fields)) if fields.len() == 1 => program_name = fields[0].clone(),
            _ => return Call::None,
        }
    }
    if !PROGRAM_NAMES.contains(&program_name.as_str()) {
        // `xargs update-alternatives …` and the like.
        let passes_it_on = !matches!(program_name.as_str(), "echo" | "printf" | "which" | "type")
            && command.words.iter().any(|word| {
                word.bare()
                    .is_some_and(|text| PROGRAM_NAMES.contains(&text))
            });
        if passes_it_on {
            return Call::Unreadable(format!("update-alternatives run through `{program_name}`"));
        }
        return Call::None;
    }
    let mut arguments = Vec::new();
    for word in words {
        match variables.expand(word, index) {
            Ok(fields) => arguments.extend(fields),
            Err(reason) => return Call::Unreadable(reason),
        }
    }
    Call::Arguments(arguments)
}

fn mentions_change(text: &str) -> bool {
    text.contains("update-alternatives")
        && text
            .split_whitespace()
            .any(|word| CHANGING_ACTIONS.contains(&word))
}

enum Action {
    Install(Install),
    Selection,
    Ignored,
}

/// The arguments as `update-alternatives`' `main` reads them.
fn read_arguments(arguments: &[String]) -> Result<Action, String> {
    let mut action: Option<&str> = None;
    let mut install: Option<Install> = None;
    let mut index = 0;
    let take = |index: usize, count: usize, what: &str| -> Result<&[String], String> {
        arguments
            .get(index + 1..index + 1 + count)
            .ok_or_else(|| format!("{what} lacks arguments"))
    };
    while index < arguments.len() {
        let argument = arguments[index].as_str();
        match argument {
            "--quiet" | "--verbose" | "--force" | "--skip-auto" | "--debug" => index += 1,
            "--log" => {
                take(index, 1, "--log")?;
                index += 2;
            }
            "--altdir" | "--admindir" | "--root" | "--instdir" => {
                return Err(format!(
                    "{argument} moves the alternatives away from where the image keeps them"
                ));
            }
            "--install" => {
                set_action(&mut action, "install")?;
                let values = take(index, 4, "--install")?;
                let priority = parse_priority(&values[3])?;
                if values[0] == values[2] {
                    return Err("<link> and <path> are the same".into());
                }
                install = Some(Install {
                    link: values[0].clone(),
                    name: values[1].clone(),
                    path: values[2].clone(),
                    priority,
                    slaves: Vec::new(),
                    line: 0,
                });
                index += 5;
            }
            "--slave" => {
                let Some(install) = install.as_mut() else {
                    return Err("--slave only allowed with --install".into());
                };
                let values = take(index, 3, "--slave")?;
                let slave = Slave {
                    link: values[0].clone(),
                    name: values[1].clone(),
                    path: values[2].clone(),
                };
                if slave.link == slave.path {
                    return Err(format!(
                        "slave {}: <link> and <path> are the same",
                        slave.name
                    ));
                }
                if slave.name == install.name || slave.link == install.link {
                    return Err(format!("slave {} is also the master", slave.name));
                }
                if install
                    .slaves
                    .iter()
                    .any(|other| other.name == slave.name || other.link == slave.link)
                {
                    return Err(format!("duplicate slave {}", slave.name));
                }
                install.slaves.push(slave);
                index += 4;
            }
            "--remove" | "--set" => {
                set_action(
                    &mut action,
                    if argument == "--set" { "set" } else { "remove" },
                )?;
                take(index, 2, argument)?;
                index += 3;
            }
            "--display" | "--query" | "--list" | "--remove-all" | "--auto" | "--config" => {
                set_action(&mut action, &argument[2..])?;
                take(index, 1, argument)?;
                index += 2;
            }
            "--all" | "--get-selections" | "--set-selections" => {
                set_action(&mut action, &argument[2..])?;
                index += 1;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    match action {
        Some("install") => {
            let install = install.expect("--install read");
            check_install(&install)?;
            Ok(Action::Install(install))
        }
        Some("set" | "auto" | "config" | "all" | "set-selections") => Ok(Action::Selection),
        Some(_) => Ok(Action::Ignored),
        None => Err("no action".into()),
    }
}

/// Records the call's action; `update-alternatives` refuses a second.
fn set_action<'a>(action: &mut Option<&'a str>, name: &'a str) -> Result<(), String> {
    match action {
        Some(previous) => Err(format!(
            "two actions in one call (--{previous} and --{name})"
        )),
        None => {
            *action = Some(name);
            Ok(())
        }
    }
}

/// `strtol` into an `int`, whole string.
fn parse_priority(text: &str) -> Result<i32, String> {
    text.parse::<i32>()
        .map_err(|_| format!("priority `{text}` is not an integer"))
}

/// The checks `update-alternatives` makes of names, links and paths.
fn check_install(install: &Install) -> Result<(), String> {
    let check_name = |name: &str| {
        if name.is_empty() || name.contains(['/', ' ', '\t']) {
            Err(format!(
                "alternative name `{name}` is empty or contains '/' or blanks"
            ))
        } else {
            Ok(())
        }
    };
    let check_absolute = |path: &str| {
        if path.starts_with('/') {
            Ok(())
        } else {
            Err(format!("`{path}` is not absolute"))
        }
    };
    check_name(&install.name)?;
    check_absolute(&install.link)?;
    check_absolute(&install.path)?;
    for slave in &install.slaves {
        check_name(&slave.name)?;
        check_absolute(&slave.link)?;
        check_absolute(&slave.path)?;
    }
    Ok(())
}

/// The variables whose value at a command is certain: set exactly once in
/// the script, by a plain top-level assignment of literal text (or of
/// variables already certain), never the target of `for`, `read`,
/// `unset`, `local`, `export`…, in a script without `eval`, and with no
/// `.` or `source` between the assignment and the use.
struct Variables {
    /// Name → (command index of the assignment, value).
    certain: HashMap<String, (usize, String)>,
    /// Command indices of `.`/`source`.
    sourcings: Vec<usize>,
}

impl Variables {
    fn new(commands: &[Command]) -> Variables {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut tainted: Vec<&str> = Vec::new();
        let mut has_eval = false;
        let mut sourcings = Vec::new();
        for (index, command) in commands.iter().enumerate() {
            for word in &command.words {
                if let Some((name, _)) = word.assignment() {
                    *counts.entry(name).or_default() += 1;
                }
            }
            let program = command
                .words
                .iter()
                .find(|word| word.assignment().is_none())
                .and_then(Word::bare);
            match program {
                Some("eval") => has_eval = true,
                Some("." | "source") => {
                    sourcings.push(index);
                    if !command.contexts.is_empty() {
                        has_eval = true;
                    }
                }
                Some(
                    "for" | "read" | "unset" | "local" | "export" | "readonly" | "getopts"
                    | "typeset" | "declare",
                ) => {
                    for word in &command.words[1..] {
                        if let Some(text) = word.bare() {
                            tainted.push(text.split('=').next().unwrap_or(text));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut variables = Variables {
            certain: HashMap::new(),
            sourcings,
        };
        if has_eval {
            return variables;
        }
        for (index, command) in commands.iter().enumerate() {
            let plain = command.contexts.is_empty() && !command.joined && command.words.len() == 1;
            let Some((name, value)) = command.words.first().and_then(Word::assignment) else {
                continue;
            };
            if !plain || counts.get(name) != Some(&1) || tainted.contains(&name) {
                continue;
            }
            let word = Word {
                parts: value,
                line: command.first_line,
            };
            if let Ok(text) = variables.expand_joined(&word, index) {
                variables.certain.insert(name.to_owned(), (index, text));
            }
        }
        variables
    }

    fn value(&self, name: &str, at: usize) -> Option<&str> {
        let (assigned, value) = self.certain.get(name)?;
        let sourced_between = self
            .sourcings
            .iter()
            .any(|&sourcing| *assigned < sourcing && sourcing < at);
        (*assigned < at && !sourced_between).then_some(value.as_str())
    }

    /// A word without field splitting (an assignment's value).
    fn expand_joined(&self, word: &Word, at: usize) -> Result<String, String> {
        let mut text = String::new();
        for part in &word.parts {
            match part {
                Part::Literal(literal) | Part::Quoted(literal) => text.push_str(literal),
                Part::Variable { name, .. } => text.push_str(self.variable(name, at)?),
                Part::Opaque { what, text } => return Err(format!("{what} `{text}`")),
            }
        }
        Ok(text)
    }

    fn variable(&self, name: &str, at: usize) -> Result<&str, String> {
        self.value(name, at)
            .ok_or_else(|| format!("`${name}` has no value certain without running the script"))
    }

    /// A command word as fields. Unquoted text with glob characters and
    /// unquoted expansions with blanks (field splitting) or that come out
    /// empty are refused rather than imitated.
    fn expand(&self, word: &Word, at: usize) -> Result<Vec<String>, String> {
        let mut text = String::new();
        let mut any_quoted = false;
        for part in &word.parts {
            match part {
                Part::Literal(literal) => {
                    if literal.contains(['*', '?', '[']) {
                        return Err(format!("`{literal}` is a pattern for pathname expansion"));
                    }
                    text.push_str(literal);
                }
                Part::Quoted(literal) => {
                    any_quoted = true;
                    text.push_str(literal);
                }
                Part::Variable { name, quoted } => {
                    let value = self.variable(name, at)?;
                    if !quoted
                        && (value.contains([' ', '\t', '\n', '*', '?', '[']) || value.is_empty())
                    {
                        return Err(format!(
                            "unquoted `${name}` would be split or expanded (value `{value}`)"
                        ));
                    }
                    any_quoted |= *quoted;
                    text.push_str(value);
                }
                Part::Opaque { what, text } => return Err(format!("{what} `{text}`")),
            }
        }
        if text.is_empty() && !any_quoted {
            return Ok(Vec::new());
        }
        Ok(vec![text])
    }
}

mod database;

pub use database::{Chosen, SkipReason, apply};

#[cfg(test)]
#[path = "alternatives_tests.rs"]
mod tests;
