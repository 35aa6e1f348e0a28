//! SIGINT and SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};

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
