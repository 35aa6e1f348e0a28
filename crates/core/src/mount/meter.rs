//! The byte accounting of one node of a copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oci_spec::image::Descriptor;

use crate::report::{CopyEvent, EventSink};
use crate::store::ByteStream;

/// The byte accounting of one node of a copy: every byte streamed through the client for it,
/// by the fallback copy or by a strategy, and the progress events they produce.
pub(crate) struct Meter {
    descriptor: Descriptor,
    bytes: Arc<AtomicU64>,
    sink: Option<EventSink>,
}

impl Meter {
    pub(crate) fn new(descriptor: &Descriptor, sink: Option<EventSink>) -> Self {
        Self {
            descriptor: descriptor.clone(),
            bytes: Arc::default(),
            sink,
        }
    }

    /// Every byte counted so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts the bytes of `stream`; with a sink, announces the transfer and reports its
    /// progress (at most every 50 ms, and at the end).
    pub(crate) fn count(&self, stream: ByteStream) -> ByteStream {
        let bytes = self.bytes.clone();
        let Some(sink) = self.sink.clone() else {
            return Box::pin(stream.inspect(move |chunk| {
                if let Ok(c) = chunk {
                    bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
            }));
        };
        sink(&CopyEvent::Copying(self.descriptor.clone()));
        let descriptor = self.descriptor.clone();
        let total = descriptor.size();
        let mut done = 0u64;
        let mut last = Instant::now() - PROGRESS_INTERVAL;
        Box::pin(stream.inspect(move |chunk| {
            if let Ok(c) = chunk {
                bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
                done += c.len() as u64;
                if done == total || last.elapsed() >= PROGRESS_INTERVAL {
                    last = Instant::now();
                    sink(&CopyEvent::Bytes {
                        descriptor: descriptor.clone(),
                        done,
                        total,
                    });
                }
            }
        }))
    }
}

/// The shortest time between two progress events of one transfer.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);
