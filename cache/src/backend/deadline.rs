//! How long one read from a remote may take in all.
//!
//! The idle timeout ([`super::RemoteConfig::idle_timeout`]) bounds each
//! wait for the next bytes, and re-arms on every byte: a remote sending
//! one byte every two seconds never trips it. So every read of a remote —
//! a signed envelope, a pointer, a manifest, a blob — also has a
//! [`Deadline`] for the whole read, retries included:
//!
//! ```text
//! (30 s + the declared size at 1 MiB/s) × idle timeout / 30 s
//! ```
//!
//! With the default idle timeout (`--http-timeout 30`), an envelope or
//! manifest gets 30 s and a 100 MiB blob 130 s; `--http-timeout 60`
//! doubles both. A read is checked against its deadline before each
//! attempt and after each chunk it receives, so one past it is abandoned
//! at its next byte, or when the idle timeout ends the wait for one.

use super::RemoteError;
use std::time::{Duration, Instant};

/// The time every read is allowed, at the default idle timeout.
pub const BASE: Duration = Duration::from_secs(30);
/// The slowest rate a declared size is allowed at, at the default idle
/// timeout.
pub const FLOOR_BYTES_PER_SECOND: u64 = 1024 * 1024;
/// The idle timeout the allowances above are for; another one scales them.
const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// The end of the time one remote read is allowed.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    allowed: Duration,
}

impl Deadline {
    /// The deadline of a read of `size` declared bytes starting now, with
    /// `idle` as the idle timeout.
    pub fn for_size(idle: Duration, size: u64) -> Deadline {
        let at_default = BASE.as_secs_f64() + size as f64 / FLOOR_BYTES_PER_SECOND as f64;
        let scale = idle.as_secs_f64() / DEFAULT_IDLE.as_secs_f64();
        Deadline {
            start: Instant::now(),
            allowed: Duration::from_secs_f64((at_default * scale).min(u32::MAX as f64)),
        }
    }

    /// The deadline of a small document (an envelope, a pointer, a
    /// manifest, a token) or of an existence check: the base time, scaled.
    pub fn for_document(idle: Duration) -> Deadline {
        Deadline::for_size(idle, 0)
    }

    /// The time the read is allowed in all.
    pub fn allowed(&self) -> Duration {
        self.allowed
    }

    /// The time left (zero once it is up).
    pub fn remaining(&self) -> Duration {
        self.allowed.saturating_sub(self.start.elapsed())
    }

    /// Whether the time is up.
    pub fn passed(&self) -> bool {
        self.start.elapsed() >= self.allowed
    }

    /// `Err` once the time is up: the read of `url` is to be abandoned.
    pub fn check(&self, method: &'static str, url: &str) -> Result<(), RemoteError> {
        if self.passed() {
            return Err(RemoteError::Deadline {
                method,
                url: url.to_owned(),
                allowed: self.allowed,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_with_the_size_and_scales_with_the_idle_timeout() {
        let default = Duration::from_secs(30);
        assert_eq!(Deadline::for_document(default).allowed(), BASE);
        assert_eq!(
            Deadline::for_size(default, 100 * 1024 * 1024).allowed(),
            Duration::from_secs(130)
        );
        assert_eq!(
            Deadline::for_size(Duration::from_secs(60), 30 * 1024 * 1024).allowed(),
            Duration::from_secs(120)
        );
        assert_eq!(
            Deadline::for_document(Duration::from_secs(3)).allowed(),
            Duration::from_secs(3)
        );
        let over = Deadline::for_document(Duration::ZERO);
        assert!(over.passed());
        let error = over.check("GET", "http://127.0.0.1:9/xb/x").unwrap_err();
        assert!(error.is_unreachable() && !error.is_transient(), "{error}");
    }
}
