//! The `Reporter` trait: how library code tells a front end what it is
//! doing. Only `src/cli/` turns these calls into progress bars; the library
//! never prints.

/// Receives progress events. Every method has a no-op default, so an
/// implementation overrides only what it shows. Implementations must be
/// cheap and thread-safe: downloads and layer builds call them from worker
/// threads.
pub trait Reporter: Send + Sync {
    /// A new phase of the pipeline begins (`resolve`, `fetch`, `layers`, `assemble`).
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
    /// A layer build starts; returns an id.
    fn on_layer_start(&self, _name: &str) -> usize {
        0
    }
    /// Layer build `id` finished.
    fn on_layer_complete(&self, _id: usize) {}
    /// A human-readable note (warnings, skipped maintainer scripts…).
    fn on_note(&self, _text: &str) {}
}

/// A reporter that shows nothing.
pub struct SilentReporter;

impl Reporter for SilentReporter {}
