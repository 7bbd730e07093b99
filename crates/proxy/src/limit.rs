//! A rate limiter for log lines that the agent can trigger at will, so a flood of
//! refused requests cannot flood the operator's terminal.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Log lines allowed per window.
const LINES_PER_WINDOW: u32 = 20;

/// Length of one window.
const WINDOW: Duration = Duration::from_secs(1);

/// A fixed-window counter of log lines.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    printed: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) fn new() -> LogLimiter {
        LogLimiter {
            state: Mutex::new(Window {
                start: Instant::now(),
                printed: 0,
                suppressed: 0,
            }),
        }
    }

    /// Returns whether one more line may be printed now. When a new window starts after
    /// suppressed lines, it first logs how many were dropped.
    pub(crate) fn allow(&self) -> bool {
        let mut window = self
            .state
            .lock()
            .expect("log limiter lock is never poisoned");
        if window.start.elapsed() >= WINDOW {
            if window.suppressed > 0 {
                tracing::warn!(
                    suppressed = window.suppressed,
                    "egress log lines were suppressed by the rate limit; the audit log has them all"
                );
            }
            *window = Window {
                start: Instant::now(),
                printed: 0,
                suppressed: 0,
            };
        }
        if window.printed < LINES_PER_WINDOW {
            window.printed += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_lines_per_window() {
        let limiter = LogLimiter::new();
        let allowed = (0..100).filter(|_| limiter.allow()).count();
        // All 100 calls run well inside one window on any machine that can run tests.
        assert!(allowed >= usize::try_from(LINES_PER_WINDOW).expect("small"));
        assert!(allowed < 100, "the limiter let every line through");
    }
}
