//! SIGINT and SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use ferry_sync::{Stop, StopLevel};

use crate::exit;

/// Whether a sync's runner is running: a signal outside it (while the entries are checked
/// and the stores opened) ends the process at once, as nothing is half done then.
pub static RUNNING: AtomicBool = AtomicBool::new(false);

/// SIGINT and SIGTERM stop a sync: the first gently, a second at once.
pub fn watch(stop: Stop) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = interrupt.recv() => "SIGINT",
                Some(()) = terminate.recv() => "SIGTERM",
                else => return,
            };
            if !RUNNING.load(Ordering::SeqCst) || stop.level() == StopLevel::Abort {
                // Nothing is being copied (or a stop at once was asked already): end now.
                eprintln!("ferry: {name}: exiting");
                std::process::exit(i32::from(exit::FAILED));
            }
            match stop.escalate() {
                StopLevel::Drain => eprintln!(
                    "ferry: {name}: stopping; no new image starts, the images in flight may \
                     finish within the grace period (send it again to stop at once)"
                ),
                _ => eprintln!("ferry: {name} again: stopping the images in flight at once"),
            }
        }
    });
    Ok(())
}

/// The signal that stopped a command, if any.
#[derive(Debug, Default)]
pub struct Received(AtomicU8);

impl Received {
    /// The shell's exit code for the signal received (`128 + N`: 130 for SIGINT, 143 for
    /// SIGTERM), if one was.
    pub fn exit_code(&self) -> Option<u8> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => Some(128 + n),
        }
    }
}

/// SIGINT and SIGTERM stop a copy: the first drains it (no new blob starts and no manifest is
/// pushed, so no tag is written; transfers in flight get `grace`), then stops it; a second
/// stops it at once.
pub fn watch_copy(stop: Stop, grace: Duration) -> std::io::Result<Arc<Received>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let received = Arc::new(Received::default());
    let seen = received.clone();
    tokio::spawn(async move {
        loop {
            let (name, number) = tokio::select! {
                Some(()) = interrupt.recv() => ("SIGINT", 2u8),
                Some(()) = terminate.recv() => ("SIGTERM", 15u8),
                else => return,
            };
            let _ = seen
                .0
                .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
            match stop.escalate() {
                StopLevel::Drain => {
                    eprintln!(
                        "ferry: {name}: stopping; no new blob starts, the transfers in flight \
                         may finish within {}, then the upload sessions left open are \
                         cancelled and no tag is written (send it again to stop at once)",
                        humantime_secs(grace)
                    );
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        stop.abort();
                    });
                }
                _ => eprintln!("ferry: {name} again: stopping at once"),
            }
        }
    });
    Ok(received)
}

/// `10 s`, `1.5 s`.
fn humantime_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
