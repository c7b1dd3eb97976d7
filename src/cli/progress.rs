//! What a build shows while it runs, behind the library's `Reporter` trait.
//!
//! On a terminal (stderr), a few live lines drawn by indicatif, redrawn in
//! place and cleared at the end, so that only the summary stays:
//!
//! ```text
//! ⠙ Building                                                                  4s
//! ⠚ fetching 9/30 files for gcc x86_64-linux → armv7-linux  [███████▌░░░]  45.98 MiB/52.54 MiB  27.21 MiB/s ETA  1s
//! ⠚ assembling gcc x86_64-linux → armv7-linux                                 3s
//!   ⠒ g++-12-arm-linux-gnueabihf_12.2.0-14cross1_amd64.deb   1.27 MiB/9.15 MiB   ████░░░░░░░
//!   ⠁ libasan8-armhf-cross_12.2.0-14cross1_all.deb               0 B/2.01 MiB   ░░░░░░░░░░░
//! ```
//!
//! First the phase, then one bar per batch of downloads (files, bytes,
//! ETA), one spinner per long step, and at most [`MAX_WORKER_LINES`] lines
//! of active work (downloads, layers); a finished item's line is removed
//! at once, and an item waiting for a line gets the next free one. The
//! number of lines never exceeds the terminal's height minus
//! [`SPARE_LINES`]: bars taller than the terminal cannot be redrawn in
//! place and would leave copies in the scrollback. Notes, warnings and the
//! output of child processes (cargo, make) are printed above the bars.
//!
//! Off a terminal: one plain line when a step or batch starts and one when
//! it ends, notes and warnings, child output; no bars. In quiet mode
//! (`-q`): nothing, but when the command fails, the last lines the child
//! processes printed (what says why). A closed stderr is not an error.

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xbuild::progress::Reporter;

/// Most lines of active downloads and layer builds shown at once.
pub const MAX_WORKER_LINES: usize = 6;
/// Terminal lines never covered by bars (the line being printed above
/// them, the cursor's, one of margin).
pub const SPARE_LINES: usize = 3;
/// Height assumed when the terminal does not say.
const DEFAULT_HEIGHT: usize = 24;
/// Columns from which lines show bars and speeds.
const WIDE: usize = 100;
const TICK: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Plain,
    Quiet,
}

/// Where a line sits: the phase first, then batches, steps, workers, each
/// in the order they started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Row {
    Phase,
    Batch(usize),
    Step(usize),
    Worker(usize),
}

struct Batch {
    label: String,
    files: usize,
    files_done: usize,
    bytes: u64,
    bytes_done: u64,
    started: Instant,
}

struct Step {
    name: String,
    started: Instant,
}

enum Worker {
    Download {
        name: String,
        total: Option<u64>,
        received: u64,
    },
    Layer {
        name: String,
    },
}

#[derive(Default)]
struct State {
    phase: Option<String>,
    batches: BTreeMap<usize, Batch>,
    steps: BTreeMap<usize, Step>,
    workers: BTreeMap<usize, Worker>,
    /// The bar of each row that has a line now.
    shown: BTreeMap<Row, ProgressBar>,
}

pub struct BarReporter {
    mode: Mode,
    multi: MultiProgress,
    next_id: AtomicUsize,
    state: Mutex<State>,
    /// The terminal's height, when fixed (tests); else asked at each layout.
    height: Option<usize>,
    /// Quiet mode: the last lines of child output, shown if the command fails.
    held: Mutex<std::collections::VecDeque<String>>,
}

/// Lines of child output quiet mode keeps for a failure.
const HELD_LINES: usize = 60;

impl BarReporter {
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Plain
        };
        let multi = MultiProgress::with_draw_target(if mode == Mode::Bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        BarReporter {
            mode,
            multi,
            next_id: AtomicUsize::new(1),
            state: Mutex::new(State::default()),
            height: None,
            held: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// [`BarReporter::finish`]; after a failure in quiet mode, first prints
    /// the child output it held back.
    pub fn finish_after(&self, failed: bool) {
        self.finish();
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        if failed && !held.is_empty() {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "the last {} lines the build printed:", held.len());
            for line in held {
                let _ = writeln!(stderr, "  {line}");
            }
        }
    }

    /// Removes every line: after this, only what is printed stays.
    pub fn finish(&self) {
        let mut state = self.state.lock().unwrap();
        for (_, bar) in std::mem::take(&mut state.shown) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        *state = State::default();
        let _ = self.multi.clear();
    }

    fn id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A line above the bars (or a plain line off a terminal).
    fn print(&self, line: &str) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(line);
            }
            Mode::Plain | Mode::Quiet => say(line),
        }
    }

    /// Gives lines to the rows that have none, in row order, while the
    /// terminal has room.
    fn layout(&self, state: &mut State) {
        let (height, width) = terminal_size();
        let height = self.height.unwrap_or(height);
        let budget = height.saturating_sub(SPARE_LINES).max(1);
        let mut waiting: Vec<Row> = Vec::new();
        if state.phase.is_some() {
            waiting.push(Row::Phase);
        }
        waiting.extend(state.batches.keys().map(|&id| Row::Batch(id)));
        waiting.extend(state.steps.keys().map(|&id| Row::Step(id)));
        waiting.extend(state.workers.keys().map(|&id| Row::Worker(id)));
        // Over budget (a smaller terminal, a new header row): the last
        // rows give their lines back first.
        while state.shown.len() > budget {
            let (_, bar) = state.shown.pop_last().expect("over budget means not empty");
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        for row in waiting {
            if state.shown.contains_key(&row) {
                continue;
            }
            let workers_shown = state
                .shown
                .keys()
                .filter(|row| matches!(row, Row::Worker(_)))
                .count();
            if let Row::Worker(_) = row
                && workers_shown >= MAX_WORKER_LINES
            {
                break;
            }
            if state.shown.len() >= budget {
                // A header row outranks a worker line.
                match state.shown.last_key_value() {
                    Some((&last, _)) if matches!(last, Row::Worker(_)) && last > row => {
                        let bar = state.shown.remove(&last).expect("just seen");
                        bar.finish_and_clear();
                        self.multi.remove(&bar);
                    }
                    _ => break,
                }
            }
            let bar = new_bar(state, row, width);
            let index = state.shown.range(..row).count();
            let bar = self.multi.insert(index, bar);
            bar.tick();
            state.shown.insert(row, bar);
        }
    }

    /// Removes the line of `row` (if it has one) and lets a waiting row
    /// take it.
    fn remove_row(&self, state: &mut State, row: Row) {
        if let Some(bar) = state.shown.remove(&row) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.layout(state);
    }

    /// Moves every batch bar to the bytes of its finished files plus the
    /// bytes of the downloads under way (never backwards: a finished
    /// download leaves the in-flight sum a moment before its file is
    /// counted as done).
    fn update_batches(&self, state: &State) {
        let in_flight: u64 = state
            .workers
            .values()
            .map(|worker| match worker {
                Worker::Download { received, .. } => *received,
                Worker::Layer { .. } => 0,
            })
            .sum();
        for (&id, batch) in &state.batches {
            if let Some(bar) = state.shown.get(&Row::Batch(id)) {
                let position = (batch.bytes_done + in_flight).min(batch.bytes);
                bar.set_position(position.max(bar.position()));
                bar.set_message(batch_message(batch));
            }
        }
    }
}

/// The bar for `row`, configured but drawing nowhere yet (a bar draws on
/// its first message unless told otherwise: it must join the
/// `MultiProgress` first, or its line is left on the screen).
/// On a terminal narrower than [`WIDE`] columns, lines leave out the bars
/// and the speed, so that they do not wrap.
fn new_bar(state: &State, row: Row, width: usize) -> ProgressBar {
    let wide = width >= WIDE;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    let template = match row {
        Row::Phase => {
            bar.set_message(phase_title(state.phase.as_deref().unwrap_or_default()));
            "{spinner} {wide_msg} {elapsed:>4}"
        }
        Row::Batch(id) => {
            let batch = &state.batches[&id];
            bar.set_length(batch.bytes);
            bar.set_position(batch.bytes_done);
            bar.set_message(batch_message(batch));
            if wide {
                "{spinner} {wide_msg} [{bar:25}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta:>3}"
            } else {
                "{spinner} {wide_msg} {bytes:>9}/{total_bytes:<9} ETA {eta:>3}"
            }
        }
        Row::Step(id) => {
            bar.set_message(state.steps[&id].name.clone());
            "{spinner} {wide_msg} {elapsed:>4}"
        }
        Row::Worker(id) => match &state.workers[&id] {
            Worker::Download {
                name,
                total: Some(total),
                received,
            } => {
                bar.set_length(*total);
                bar.set_position(*received);
                bar.set_message(name.clone());
                if wide {
                    "  {spinner} {wide_msg} {bytes:>10}/{total_bytes:<10} {bar:25}"
                } else {
                    "  {spinner} {wide_msg} {bytes:>9}/{total_bytes:<9}"
                }
            }
            Worker::Download { name, received, .. } => {
                bar.set_position(*received);
                bar.set_message(name.clone());
                "  {spinner} {wide_msg} {bytes:>10}"
            }
            Worker::Layer { name } => {
                bar.set_message(format!("layer {name}"));
                "  {spinner} {wide_msg}"
            }
        },
    };
    let style = ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .progress_chars("█▌░");
    bar.set_style(style);
    bar.enable_steady_tick(TICK);
    bar
}

fn phase_title(phase: &str) -> String {
    match phase {
        "resolve" => "Resolving packages".to_owned(),
        "build" => "Building".to_owned(),
        "layers" => "Building layers".to_owned(),
        "assemble" => "Assembling images".to_owned(),
        other => other.to_owned(),
    }
}

fn batch_message(batch: &Batch) -> String {
    format!(
        "fetching {}/{} files for {}",
        batch.files_done, batch.files, batch.label
    )
}

/// The terminal's (height, width), or [`DEFAULT_HEIGHT`] × 80.
fn terminal_size() -> (usize, usize) {
    console::Term::stderr()
        .size_checked()
        .map(|(rows, columns)| (usize::from(rows), usize::from(columns)))
        .filter(|&(rows, columns)| rows > 0 && columns > 0)
        .unwrap_or((DEFAULT_HEIGHT, 80))
}

/// Writes one line to stderr; a closed stderr is not an error.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn seconds(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

impl Reporter for BarReporter {
    fn on_phase(&self, phase: &str) {
        if self.mode != Mode::Bars {
            return;
        }
        let mut state = self.state.lock().unwrap();
        state.phase = Some(phase.to_owned());
        if let Some(bar) = state.shown.get(&Row::Phase) {
            bar.set_message(phase_title(phase));
            bar.reset_elapsed();
        }
        self.layout(&mut state);
    }

    fn on_download_start(&self, name: &str, total_bytes: Option<u64>) -> usize {
        let id = self.id();
        if self.mode == Mode::Bars {
            let mut state = self.state.lock().unwrap();
            state.workers.insert(
                id,
                Worker::Download {
                    name: name.to_owned(),
                    total: total_bytes,
                    received: 0,
                },
            );
            self.layout(&mut state);
        }
        id
    }

    fn on_download_progress(&self, id: usize, bytes: u64) {
        if self.mode != Mode::Bars {
            return;
        }
        let mut state = self.state.lock().unwrap();
        if let Some(Worker::Download { received, .. }) = state.workers.get_mut(&id) {
            *received += bytes;
            if let Some(bar) = state.shown.get(&Row::Worker(id)) {
                bar.inc(bytes);
            }
            self.update_batches(&state);
        }
    }

    fn on_download_complete(&self, id: usize) {
        if self.mode != Mode::Bars {
            return;
        }
        let mut state = self.state.lock().unwrap();
        state.workers.remove(&id);
        self.remove_row(&mut state, Row::Worker(id));
    }

    fn on_retry(&self, url: &str, attempt: u32, reason: &str) {
        if self.mode != Mode::Quiet {
            self.print(&format!(
                "warning: retrying {url} (attempt {attempt} failed: {reason})"
            ));
        }
    }

    fn on_batch_start(&self, label: &str, files: usize, bytes: u64) -> usize {
        let id = self.id();
        let batch = Batch {
            label: label.to_owned(),
            files,
            files_done: 0,
            bytes,
            bytes_done: 0,
            started: Instant::now(),
        };
        match self.mode {
            Mode::Bars => {
                let mut state = self.state.lock().unwrap();
                state.batches.insert(id, batch);
                self.layout(&mut state);
            }
            Mode::Plain => {
                say(&format!(
                    "fetching {files} files ({}) for {label}",
                    HumanBytes(bytes)
                ));
                self.state.lock().unwrap().batches.insert(id, batch);
            }
            Mode::Quiet => {}
        }
        id
    }

    fn on_batch_file(&self, id: usize, bytes: u64) {
        let mut state = self.state.lock().unwrap();
        if let Some(batch) = state.batches.get_mut(&id) {
            batch.files_done += 1;
            batch.bytes_done += bytes;
            self.update_batches(&state);
        }
    }

    fn on_batch_complete(&self, id: usize) {
        let mut state = self.state.lock().unwrap();
        let Some(batch) = state.batches.remove(&id) else {
            return;
        };
        if self.mode == Mode::Plain {
            say(&format!(
                "fetched {}/{} files ({}) for {} in {}",
                batch.files_done,
                batch.files,
                HumanBytes(batch.bytes_done),
                batch.label,
                seconds(batch.started)
            ));
        }
        self.remove_row(&mut state, Row::Batch(id));
    }

    fn on_step_start(&self, name: &str) -> usize {
        let id = self.id();
        let step = Step {
            name: name.to_owned(),
            started: Instant::now(),
        };
        match self.mode {
            Mode::Bars => {
                let mut state = self.state.lock().unwrap();
                state.steps.insert(id, step);
                self.layout(&mut state);
            }
            Mode::Plain => {
                say(&format!("{name}…"));
                self.state.lock().unwrap().steps.insert(id, step);
            }
            Mode::Quiet => {}
        }
        id
    }

    fn on_step_complete(&self, id: usize, succeeded: bool) {
        let mut state = self.state.lock().unwrap();
        let Some(step) = state.steps.remove(&id) else {
            return;
        };
        if self.mode == Mode::Plain {
            let outcome = if succeeded { "done in" } else { "failed after" };
            say(&format!(
                "{}: {outcome} {}",
                step.name,
                seconds(step.started)
            ));
        }
        self.remove_row(&mut state, Row::Step(id));
    }

    fn on_layer_start(&self, name: &str) -> usize {
        let id = self.id();
        if self.mode == Mode::Bars {
            let mut state = self.state.lock().unwrap();
            state.workers.insert(
                id,
                Worker::Layer {
                    name: name.to_owned(),
                },
            );
            self.layout(&mut state);
        }
        id
    }

    fn on_layer_complete(&self, id: usize) {
        if self.mode != Mode::Bars {
            return;
        }
        let mut state = self.state.lock().unwrap();
        state.workers.remove(&id);
        self.remove_row(&mut state, Row::Worker(id));
    }

    fn on_note(&self, text: &str) {
        if self.mode != Mode::Quiet {
            self.print(&format!("note: {text}"));
        }
    }

    fn on_output_line(&self, line: &str) {
        // A child's `\r` redraws would overwrite the bars: its last
        // state only.
        let line = line.rsplit('\r').next().unwrap_or_default();
        if self.mode == Mode::Quiet {
            let mut held = self.held.lock().unwrap();
            if held.len() == HELD_LINES {
                held.pop_front();
            }
            held.push_back(line.to_owned());
            return;
        }
        self.print(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bars drawn nowhere, on a terminal `height` lines tall.
    fn reporter(height: usize) -> BarReporter {
        BarReporter {
            mode: Mode::Bars,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            next_id: AtomicUsize::new(1),
            state: Mutex::new(State::default()),
            height: Some(height),
            held: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    fn shown(reporter: &BarReporter) -> Vec<Row> {
        reporter
            .state
            .lock()
            .unwrap()
            .shown
            .keys()
            .copied()
            .collect()
    }

    #[test]
    fn at_most_max_worker_lines_and_finished_ones_leave() {
        let reporter = reporter(40);
        reporter.on_phase("build");
        let batch = reporter.on_batch_start("gcc", 36, 36_000);
        let step = reporter.on_step_start("assembling gcc");
        let downloads: Vec<usize> = (0..36)
            .map(|index| reporter.on_download_start(&format!("file{index}.deb"), Some(1000)))
            .collect();
        let rows = shown(&reporter);
        assert_eq!(rows.len(), 3 + MAX_WORKER_LINES, "{} lines", rows.len());
        assert_eq!(rows[..3], [Row::Phase, Row::Batch(batch), Row::Step(step)]);
        // A finished download's line goes; the oldest waiting one takes it.
        reporter.on_download_complete(downloads[0]);
        let rows = shown(&reporter);
        assert!(!rows.contains(&Row::Worker(downloads[0])));
        assert_eq!(rows.last(), Some(&Row::Worker(downloads[MAX_WORKER_LINES])));
        assert_eq!(rows.len(), 3 + MAX_WORKER_LINES);
        for &id in &downloads[1..] {
            reporter.on_download_complete(id);
            reporter.on_batch_file(batch, 1000);
        }
        assert_eq!(
            shown(&reporter),
            [Row::Phase, Row::Batch(batch), Row::Step(step)]
        );
        reporter.on_batch_complete(batch);
        reporter.on_step_complete(step, true);
        assert_eq!(shown(&reporter), [Row::Phase]);
        reporter.finish();
        assert!(shown(&reporter).is_empty());
    }

    #[test]
    fn a_short_terminal_is_never_overflowed_and_steps_outrank_workers() {
        let reporter = reporter(7);
        reporter.on_phase("layers");
        for index in 0..10 {
            reporter.on_layer_start(&format!("layer{index}"));
        }
        assert_eq!(shown(&reporter).len(), 7 - SPARE_LINES);
        let step = reporter.on_step_start("building");
        let rows = shown(&reporter);
        assert_eq!(rows.len(), 7 - SPARE_LINES);
        assert_eq!(rows[..2], [Row::Phase, Row::Step(step)]);
        let tiny = super::tests::reporter(2);
        tiny.on_phase("build");
        tiny.on_step_start("building");
        tiny.on_download_start("a.deb", None);
        assert_eq!(shown(&tiny), [Row::Phase]);
    }

    #[test]
    fn the_batch_bar_counts_finished_files_and_bytes_in_flight() {
        let reporter = reporter(40);
        let batch = reporter.on_batch_start("gcc", 2, 3000);
        let download = reporter.on_download_start("a.deb", Some(2000));
        reporter.on_download_progress(download, 500);
        let position = |reporter: &BarReporter| {
            reporter.state.lock().unwrap().shown[&Row::Batch(batch)].position()
        };
        assert_eq!(position(&reporter), 500);
        reporter.on_download_complete(download);
        assert_eq!(position(&reporter), 500, "never backwards");
        reporter.on_batch_file(batch, 2000);
        reporter.on_batch_file(batch, 1000);
        assert_eq!(position(&reporter), 3000);
    }
}
