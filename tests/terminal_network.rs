//! What a person sees in a real terminal during a cold build, and what a
//! script sees off one. The terminal is tmux (a private server on its own
//! socket, ended by the test), sampled with `capture-pane` while the build
//! runs and after. A cold `hello-rust` build for armv7 fetches a cross GCC
//! (~30 files) from the host's real Debian mirror, so these tests need the
//! network (and `tmux`, which `scripts/setup.sh` installs); their names
//! contain `network`.
//!
//! The regression they pin: one bar per queued file overflowed the
//! terminal, and lines drawn outside the bar area (`0 B/…` for a file long
//! finished) stayed on the screen and in the scrollback.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::xbuild::{Xbuild, temp_dir};

/// The cold builds run one at a time: they share the network and the
/// machine's cores.
static ONE_BUILD_AT_A_TIME: Mutex<()> = Mutex::new(());

const WIDTH: usize = 140;
/// Most bar lines a screen may show: the phase, a batch, a step or two and
/// a few workers. Today's design needs 9; one bar per file needed 30+.
const MOST_BAR_LINES: usize = 12;
/// Lines of the terminal the bars leave free.
const SPARE_LINES: usize = 3;
const EXIT_MARKER: &str = "xbuild-exit=";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-rust")
}

/// `value` quoted for `sh`.
fn quote(value: &std::ffi::OsStr) -> String {
    format!("'{}'", value.to_string_lossy().replace('\'', r"'\''"))
}

/// `command` (program, arguments, environment changes) as one `sh` line.
fn shell_line(command: &Command) -> String {
    // `env` takes its `-u` options before the assignments.
    let mut line = vec!["env".to_owned()];
    let mut assignments = Vec::new();
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => {
                let mut assignment = name.to_owned();
                assignment.push("=");
                assignment.push(value);
                assignments.push(quote(&assignment));
            }
            None => line.extend(["-u".to_owned(), quote(name)]),
        }
    }
    line.extend(assignments);
    line.push(quote(command.get_program()));
    line.extend(command.get_args().map(quote));
    line.join(" ")
}

/// A tmux server of our own (its socket in a temp dir), with one session
/// running a command.
struct Tmux {
    socket: tempfile::TempDir,
}

impl Tmux {
    fn start(height: usize, line: &str) -> Tmux {
        let tmux = Tmux {
            socket: temp_dir("xbuild-tmux-"),
        };
        let status = tmux
            .command()
            .args(["new-session", "-d", "-s", "build"])
            .args(["-x", &WIDTH.to_string(), "-y", &height.to_string()])
            .arg(format!("{line}; echo {EXIT_MARKER}$?; exec sleep 3600"))
            .status()
            .expect("tmux runs (scripts/setup.sh installs it)");
        assert!(status.success(), "tmux new-session failed: {status}");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-S")
            .arg(self.socket.path().join("socket"))
            .args(["-f", "/dev/null"]);
        command
    }

    /// The visible screen, or with `history` everything since the start.
    fn capture(&self, history: bool) -> String {
        let mut command = self.command();
        command.args(["capture-pane", "-p", "-t", "build"]);
        if history {
            command.args(["-S", "-"]);
        }
        let output = command.output().expect("tmux capture-pane runs");
        assert!(output.status.success(), "capture-pane failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Our own server only (its own socket): nobody else's sessions.
        let _ = self.command().arg("kill-server").status();
    }
}

/// A line drawn by the progress bars: it starts with a spinner (braille)
/// or holds a bar.
fn is_bar_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed
        .chars()
        .next()
        .is_some_and(|first| ('\u{2801}'..='\u{28ff}').contains(&first))
        || line.contains('░')
        || line.contains('█')
}

fn is_summary_line(line: &str) -> bool {
    line.contains(" local, ") && line.contains(" downloaded (") && line.contains(" built (")
}

/// What a screen sample must never show: more bar lines than fit, a bar
/// line above other output (bars are redrawn at the bottom only, so one
/// above is left behind), the same item twice.
fn check_sample(sample: &str, height: usize, when: &str) {
    let lines: Vec<&str> = sample
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let bars: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| is_bar_line(line))
        .collect();
    let limit = MOST_BAR_LINES.min(height - SPARE_LINES);
    assert!(
        bars.len() <= limit,
        "{when}: {} bar lines on a {height}-line terminal (at most {limit}):\n{sample}",
        bars.len()
    );
    if let Some(first) = lines.iter().position(|line| is_bar_line(line)) {
        let stale = lines[first..].iter().find(|line| !is_bar_line(line));
        assert!(
            stale.is_none(),
            "{when}: a bar line is left above {:?}:\n{sample}",
            stale.unwrap()
        );
    }
    let mut items: Vec<String> = bars
        .iter()
        .map(|line| line.trim_start().chars().skip(1).collect::<String>())
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|name| name.ends_with(".deb") || name.contains(".deb"))
        .collect();
    let count = items.len();
    items.sort();
    items.dedup();
    assert_eq!(items.len(), count, "{when}: an item shown twice:\n{sample}");
}

/// Runs a cold build in a `height`-line terminal, checking every sample;
/// returns the final screen and the whole scrollback.
fn cold_build_in_terminal(height: usize) -> (String, String, usize) {
    let _one = ONE_BUILD_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let xbuild = Xbuild::new().with_host_apt();
    let out = temp_dir("xbuild-terminal-out-");
    let mut command = xbuild.command();
    command
        .args(["build"])
        .arg(example())
        .args(["--target", "armv7-linux", "--out"])
        .arg(out.path());
    let tmux = Tmux::start(height, &shell_line(&command));
    let start = Instant::now();
    let mut samples = 0;
    let mut bars_seen = 0;
    loop {
        let screen = tmux.capture(false);
        samples += 1;
        let when = format!("after {:.1}s", start.elapsed().as_secs_f64());
        bars_seen += screen.lines().filter(|line| is_bar_line(line)).count();
        if screen.contains(EXIT_MARKER) {
            break;
        }
        check_sample(&screen, height, &when);
        // Lines scrolled off the top are never redrawn: none may be a bar.
        let history = tmux.capture(true);
        let scrolled = history.lines().count().saturating_sub(height);
        let stale: Vec<&str> = history
            .lines()
            .take(scrolled)
            .filter(|line| is_bar_line(line))
            .collect();
        assert!(
            stale.is_empty(),
            "{when}: bar lines in the scrollback:\n{}",
            stale.join("\n")
        );
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "the build did not end in 30 minutes:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let screen = tmux.capture(false);
    let history = tmux.capture(true);
    assert!(
        screen.contains(&format!("{EXIT_MARKER}0")),
        "the build failed:\n{history}"
    );
    assert!(samples > 3, "too few samples ({samples}) to see the build");
    (screen, history, bars_seen)
}

/// The end: no bar anywhere, the summary once, at the bottom.
fn check_end(screen: &str, history: &str) {
    let bars: Vec<&str> = history.lines().filter(|line| is_bar_line(line)).collect();
    assert!(
        bars.is_empty(),
        "bar lines left after the build:\n{}\n--- scrollback:\n{history}",
        bars.join("\n")
    );
    assert_eq!(
        history.lines().filter(|line| is_summary_line(line)).count(),
        1,
        "the summary once:\n{history}"
    );
    let last_lines: Vec<&str> = screen
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let marker = last_lines
        .iter()
        .position(|line| line.contains(EXIT_MARKER))
        .expect("the exit marker is on the screen");
    assert!(
        marker > 0 && is_summary_line(last_lines[marker - 1]),
        "the screen ends with the summary:\n{screen}"
    );
}

#[test]
fn network_terminal_cold_build_leaves_only_the_summary() {
    let (screen, history, bars_seen) = cold_build_in_terminal(40);
    assert!(bars_seen > 0, "no progress was shown at all:\n{history}");
    check_end(&screen, &history);
    // cargo's own output went through, above the bars.
    assert!(history.contains("Compiling hello-rust"), "{history}");
}

#[test]
fn network_terminal_short_cold_build_never_overflows() {
    let (screen, history, _) = cold_build_in_terminal(12);
    check_end(&screen, &history);
}

#[test]
fn network_plain_cold_build_prints_lines_and_quiet_prints_nothing() {
    let _one = ONE_BUILD_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let xbuild = Xbuild::new().with_host_apt();
    let out = temp_dir("xbuild-plain-out-");
    let run = xbuild.build(&example(), out.path(), &["armv7-linux"]);
    let stderr = &run.success().stderr;
    // stdout holds the report only (child output goes to stderr).
    run.json();
    assert!(
        !stderr.contains('\u{1b}'),
        "no escape codes off a terminal:\n{stderr}"
    );
    assert!(
        !stderr.lines().any(is_bar_line),
        "no bars off a terminal:\n{stderr}"
    );
    for expected in [
        "assembling gcc ",
        "fetching ",
        "fetched ",
        "building cargo ",
        ": done in ",
        "Compiling hello-rust",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    assert_eq!(
        stderr.lines().filter(|line| is_summary_line(line)).count(),
        1
    );

    // Quiet, warm: nothing at all (a cold quiet build would show cargo's
    // output only).
    let quiet_out = temp_dir("xbuild-quiet-out-");
    let mut command = xbuild.command();
    command
        .args(["-q", "build"])
        .arg(example())
        .args(["--target", "armv7-linux", "--out"])
        .arg(quiet_out.path());
    let output = command.output().expect("xbuild runs");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
