//! Progress bars (indicatif) behind the library's `Reporter` trait. Hidden
//! when stderr is not a terminal and in quiet mode.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use xbuild::progress::Reporter;

pub struct BarReporter {
    multi: MultiProgress,
    enabled: bool,
    next_id: AtomicUsize,
    bars: Mutex<HashMap<usize, ProgressBar>>,
    quiet: bool,
}

impl BarReporter {
    pub fn new(quiet: bool) -> Self {
        let enabled = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        BarReporter {
            multi,
            enabled,
            next_id: AtomicUsize::new(1),
            bars: Mutex::new(HashMap::new()),
            quiet,
        }
    }

    pub fn finish(&self) {
        for (_, bar) in self.bars.lock().unwrap().drain() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }

    fn add(&self, bar: ProgressBar) -> usize {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self.enabled {
            let bar = self.multi.add(bar);
            self.bars.lock().unwrap().insert(id, bar);
        }
        id
    }

    fn remove(&self, id: usize) {
        if let Some(bar) = self.bars.lock().unwrap().remove(&id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl Reporter for BarReporter {
    fn on_download_start(&self, name: &str, total_bytes: Option<u64>) -> usize {
        if !self.enabled {
            return 0;
        }
        let bar = match total_bytes {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:40!} {bytes:>10}/{total_bytes:<10} {bar:30}",
                )
                .unwrap(),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg:40!} {bytes:>10}").unwrap(),
            ),
        };
        bar.set_message(name.to_owned());
        self.add(bar)
    }

    fn on_download_progress(&self, id: usize, bytes: u64) {
        if let Some(bar) = self.bars.lock().unwrap().get(&id) {
            bar.inc(bytes);
        }
    }

    fn on_download_complete(&self, id: usize) {
        self.remove(id);
    }

    fn on_retry(&self, url: &str, attempt: u32, reason: &str) {
        if !self.quiet {
            let _ = self.multi.println(format!(
                "warning: retrying {url} (attempt {attempt} failed: {reason})"
            ));
            if !self.enabled {
                eprintln!("warning: retrying {url} (attempt {attempt} failed: {reason})");
            }
        }
    }

    fn on_layer_start(&self, name: &str) -> usize {
        if !self.enabled {
            return 0;
        }
        let bar = ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} layer {msg}").unwrap());
        bar.set_message(name.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        self.add(bar)
    }

    fn on_layer_complete(&self, id: usize) {
        self.remove(id);
    }

    fn on_note(&self, text: &str) {
        if !self.quiet {
            eprintln!("note: {text}");
        }
    }
}
