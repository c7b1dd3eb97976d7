//! The `Reporter` trait: how library code tells a front end what it is
//! doing. Only `src/cli/` turns these calls into progress bars; the library
//! never prints. Besides the trait: [`Batch`] and [`Step`], guards that
//! announce a group of downloads or a long step and end it when dropped
//! (so an early `?` still ends it), and [`forward_lines`], which hands the
//! output of a child process (cargo, make, configure) to the reporter line
//! by line, so that it appears above the bars instead of through them.

use std::io::{BufRead, BufReader, Read, Write};

/// Receives progress events. Every method has a no-op default (except
/// [`Reporter::on_output_line`], which writes the line to stderr), so an
/// implementation overrides only what it shows. Implementations must be
/// cheap and thread-safe: downloads and layer builds call them from worker
/// threads.
pub trait Reporter: Send + Sync {
    /// A new phase of the pipeline begins (`resolve`, `build`, `layers`, `assemble`).
    fn on_phase(&self, _phase: &str) {}
    /// A transfer starts; returns an id used by the calls that follow.
    fn on_download_start(&self, _name: &str, _total_bytes: Option<u64>) -> usize {
        0
    }
    /// `bytes` more bytes of transfer `id` arrived.
    fn on_download_progress(&self, _id: usize, _bytes: u64) {}
    /// Transfer `id` finished (successfully or not).
    fn on_download_complete(&self, _id: usize) {}
    /// A transient failure is being retried.
    fn on_retry(&self, _url: &str, _attempt: u32, _reason: &str) {}
    /// A batch of `files` files of `bytes` bytes in all is about to be
    /// fetched (those already in the cache included), for `label` (a
    /// toolchain, a target); returns an id. The downloads of the batch are
    /// reported as usual with `on_download_*`.
    fn on_batch_start(&self, _label: &str, _files: usize, _bytes: u64) -> usize {
        0
    }
    /// One file of batch `id`, `bytes` long, is in the cache (downloaded
    /// or found there).
    fn on_batch_file(&self, _id: usize, _bytes: u64) {}
    /// Batch `id` ended (every file fetched, or a failure).
    fn on_batch_complete(&self, _id: usize) {}
    /// A long step starts (assembling a toolchain, building a recipe);
    /// returns an id.
    fn on_step_start(&self, _name: &str) -> usize {
        0
    }
    /// Step `id` ended, successfully or not.
    fn on_step_complete(&self, _id: usize, _succeeded: bool) {}
    /// A layer build starts; returns an id.
    fn on_layer_start(&self, _name: &str) -> usize {
        0
    }
    /// Layer build `id` finished.
    fn on_layer_complete(&self, _id: usize) {}
    /// A human-readable note (warnings, skipped maintainer scripts…).
    fn on_note(&self, _text: &str) {}
    /// One line (without its newline) a child process (cargo, make,
    /// configure) wrote. The default writes it to stderr, as the child
    /// would have: a front end that does not draw keeps the child's output.
    /// A closed stderr is not an error.
    fn on_output_line(&self, line: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// A reporter that shows no progress (the output of child processes still
/// goes to stderr, see [`Reporter::on_output_line`]).
pub struct SilentReporter;

impl Reporter for SilentReporter {}

/// A batch of downloads, announced with its size on creation and ended on
/// drop. Shared by the threads that fetch its files.
pub struct Batch<'a> {
    reporter: &'a dyn Reporter,
    id: usize,
}

impl<'a> Batch<'a> {
    /// Announces `files` files of `bytes` bytes in all, for `label`.
    pub fn start(reporter: &'a dyn Reporter, label: &str, files: usize, bytes: u64) -> Self {
        let id = reporter.on_batch_start(label, files, bytes);
        Batch { reporter, id }
    }

    /// One file of the batch, `bytes` long, is in the cache.
    pub fn file_done(&self, bytes: u64) {
        self.reporter.on_batch_file(self.id, bytes);
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.reporter.on_batch_complete(self.id);
    }
}

/// A long step: started on creation; [`Step::finish`] ends it as
/// successful, a drop without it (an error returned early) as failed.
pub struct Step<'a> {
    reporter: &'a dyn Reporter,
    id: usize,
    finished: bool,
}

impl<'a> Step<'a> {
    pub fn start(reporter: &'a dyn Reporter, name: &str) -> Self {
        let id = reporter.on_step_start(name);
        Step {
            reporter,
            id,
            finished: false,
        }
    }

    /// Ends the step as successful.
    pub fn finish(mut self) {
        self.finished = true;
        self.reporter.on_step_complete(self.id, true);
    }
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.reporter.on_step_complete(self.id, false);
        }
    }
}

/// Reads `output` (a child's piped stdout or stderr) to its end and hands
/// every line to [`Reporter::on_output_line`]; bytes that are not UTF-8
/// are replaced. A read error ends the forwarding (the child's exit status
/// says whether it failed).
pub fn forward_lines(output: impl Read, reporter: &dyn Reporter) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                reporter.on_output_line(&String::from_utf8_lossy(&line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<String>>,
    }

    impl Reporter for Recorder {
        fn on_batch_start(&self, label: &str, files: usize, bytes: u64) -> usize {
            self.events
                .lock()
                .unwrap()
                .push(format!("batch {label} {files} {bytes}"));
            7
        }
        fn on_batch_file(&self, id: usize, bytes: u64) {
            self.events
                .lock()
                .unwrap()
                .push(format!("file {id} {bytes}"));
        }
        fn on_batch_complete(&self, id: usize) {
            self.events.lock().unwrap().push(format!("end {id}"));
        }
        fn on_step_start(&self, name: &str) -> usize {
            self.events.lock().unwrap().push(format!("step {name}"));
            3
        }
        fn on_step_complete(&self, id: usize, succeeded: bool) {
            self.events
                .lock()
                .unwrap()
                .push(format!("done {id} {succeeded}"));
        }
        fn on_output_line(&self, line: &str) {
            self.events.lock().unwrap().push(format!("line {line:?}"));
        }
    }

    #[test]
    fn guards_end_what_they_start_even_on_early_return() {
        let recorder = Recorder::default();
        {
            let batch = Batch::start(&recorder, "t", 2, 10);
            batch.file_done(4);
        }
        Step::start(&recorder, "ok").finish();
        drop(Step::start(&recorder, "failed"));
        assert_eq!(
            *recorder.events.lock().unwrap(),
            [
                "batch t 2 10",
                "file 7 4",
                "end 7",
                "step ok",
                "done 3 true",
                "step failed",
                "done 3 false"
            ]
        );
    }

    #[test]
    fn forward_lines_splits_lines_and_strips_line_ends() {
        let recorder = Recorder::default();
        forward_lines(&b"one\r\ntwo\n\nlast \xff"[..], &recorder);
        assert_eq!(
            *recorder.events.lock().unwrap(),
            [
                "line \"one\"",
                "line \"two\"",
                "line \"\"",
                "line \"last \u{fffd}\""
            ]
        );
    }
}
