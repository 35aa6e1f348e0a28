//! Reassembling a UnixFS file from a CAR stream, verifying every block against its CID.
//!
//! CARv1 sections are read with `iroh-car` (each section at most 4 MiB), the file's DAG is
//! walked with `rust-unixfs` in file order (dag-pb nodes and raw leaves), and each piece of
//! content is yielded as soon as the block holding it is verified and its turn has come.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cid::Cid;
use ferry_core::{ByteStream, Error, Result};
use futures::{StreamExt, TryStreamExt};
use iroh_car::CarReader;
use rust_unixfs::file::visit::{Cache, FileVisit, IdleFileVisit};
use tokio_util::io::StreamReader;

use crate::address::RAW_CODEC;
use crate::block::verify_block;
use crate::error::IpfsError;
use crate::gateway::{Chunks, GatewayClient};

type Reader = StreamReader<futures::stream::BoxStream<'static, io::Result<Bytes>>, Bytes>;

/// Reads the CAR header from `body` and returns the file's content as a stream.
pub(crate) async fn file_stream(
    gateway: GatewayClient,
    root: Cid,
    body: Chunks,
) -> Result<ByteStream, IpfsError> {
    let car_err = |reason: String| IpfsError::Car {
        gateway: gateway.name().to_string(),
        cid: root.to_string(),
        reason,
    };
    // The reader sees a gateway failure as an io error and reports it as a parse error; the
    // failure itself is kept aside so that it is what the caller gets.
    let failure: Arc<Mutex<Option<IpfsError>>> = Arc::default();
    let slot = failure.clone();
    let io_body = body
        .map_err(move |e| {
            let err = io::Error::other(e.to_string());
            *slot.lock().expect("failure lock") = Some(e);
            err
        })
        .boxed();
    let reader = CarReader::new(StreamReader::new(io_body))
        .await
        .map_err(|e| car_err(format!("unreadable header: {e}")))?;
    let roots = reader.header().roots();
    if !roots.iter().any(|r| same_block(r, &root)) {
        tracing::debug!(cid = %root, ?roots, "CAR roots do not name the requested CID");
    }
    let walk = FileWalk {
        reader,
        failure,
        gateway,
        root,
        state: Walk::Start,
        buffered: HashMap::new(),
        buffered_bytes: 0,
        consumed: std::collections::HashSet::new(),
        car_done: false,
        cache: None,
    };
    Ok(Box::pin(futures::stream::try_unfold(
        walk,
        |mut walk| async move { Ok(walk.next_chunk().await?.map(|chunk| (chunk, walk))) },
    )))
}

enum Walk {
    Start,
    Visiting(FileVisit),
    Done,
}

struct FileWalk {
    reader: CarReader<Reader>,
    /// The gateway failure behind the last read error, if one was.
    failure: Arc<Mutex<Option<IpfsError>>>,
    gateway: GatewayClient,
    root: Cid,
    state: Walk,
    /// Verified blocks that arrived before their turn, by [`key`].
    buffered: HashMap<Cid, Bytes>,
    buffered_bytes: usize,
    /// Blocks already used once: a CAR without duplicates sends them once only.
    consumed: std::collections::HashSet<Cid>,
    car_done: bool,
    cache: Option<Cache>,
}

/// CIDv0 and CIDv1 of the same dag-pb block name the same bytes.
fn key(cid: &Cid) -> Cid {
    cid.into_v1().unwrap_or(*cid)
}

fn same_block(a: &Cid, b: &Cid) -> bool {
    key(a) == key(b)
}

/// `content` as a slice of `block` when it lies inside it (no copy), else copied.
fn slice_of(block: &Bytes, content: &[u8]) -> Bytes {
    let base = block.as_ptr() as usize;
    let start = content.as_ptr() as usize;
    if start >= base && start + content.len() <= base + block.len() {
        block.slice_ref(content)
    } else {
        Bytes::copy_from_slice(content)
    }
}

impl FileWalk {
    fn car_err(&self, reason: String) -> IpfsError {
        IpfsError::Car {
            gateway: self.gateway.name().to_string(),
            cid: self.root.to_string(),
            reason,
        }
    }

    fn unixfs_err(&self, reason: impl std::fmt::Display) -> IpfsError {
        IpfsError::UnixFs {
            cid: self.root.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The next piece of file content, `None` at the end of the file.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let needed = match &self.state {
                Walk::Start => self.root,
                Walk::Visiting(visit) => *visit.pending_links().0,
                Walk::Done => return Ok(None),
            };
            let block = self.block(&needed).await?;
            let content = match std::mem::replace(&mut self.state, Walk::Done) {
                Walk::Start if needed.codec() == RAW_CODEC => block.clone(),
                Walk::Start => {
                    let (content, _size, _metadata, next) = IdleFileVisit::default()
                        .start(&block)
                        .map_err(|e| self.unixfs_err(e))?;
                    let content = slice_of(&block, content);
                    if let Some(next) = next {
                        self.state = Walk::Visiting(next);
                    }
                    content
                }
                Walk::Visiting(visit) => {
                    let (content, next) = visit
                        .continue_walk(&block, &mut self.cache)
                        .map_err(|e| self.unixfs_err(e))?;
                    let content = slice_of(&block, content);
                    if let Some(next) = next {
                        self.state = Walk::Visiting(next);
                    }
                    content
                }
                Walk::Done => unreachable!("a finished walk needs no block"),
            };
            // A file with repeated chunks links the same block again: keep it while it is due.
            if let Walk::Visiting(visit) = &self.state {
                let (first, rest) = visit.pending_links();
                if std::iter::once(first)
                    .chain(rest)
                    .any(|c| same_block(c, &needed))
                {
                    self.hold(needed, block)?;
                }
            }
            if !content.is_empty() {
                return Ok(Some(content));
            }
        }
    }

    fn hold(&mut self, cid: Cid, block: Bytes) -> Result<(), IpfsError> {
        let k = key(&cid);
        if self.buffered.contains_key(&k) {
            return Ok(());
        }
        if self.buffered_bytes + block.len() > self.gateway.buffer_limit() {
            return Err(self.car_err(format!(
                "more than {} bytes of blocks arrived before they were needed; the gateway sends \
                 the DAG out of order: raise the buffer limit or use a gateway that sends \
                 `order=dfs`",
                self.gateway.buffer_limit()
            )));
        }
        self.buffered_bytes += block.len();
        self.buffered.insert(k, block);
        Ok(())
    }

    /// The verified block `cid`: held, next in the CAR, or fetched again when it was used
    /// already and the CAR does not repeat it.
    async fn block(&mut self, cid: &Cid) -> Result<Bytes> {
        let k = key(cid);
        if let Some(block) = self.buffered.remove(&k) {
            self.buffered_bytes -= block.len();
            return Ok(block);
        }
        if self.consumed.contains(&k) {
            tracing::debug!(%cid, "block needed again; fetching it raw");
            return self.gateway.block(cid).await;
        }
        while !self.car_done {
            let next = self
                .reader
                .next_block()
                .await
                .map_err(|e| self.read_err(e))?;
            let Some((block_cid, data)) = next else {
                self.car_done = true;
                break;
            };
            let data = Bytes::from(data);
            match verify_block(self.gateway.name(), &block_cid, &data) {
                Ok(()) => {}
                // A block this file does not need may use a hash ferry cannot check: skip it.
                Err(IpfsError::UnsupportedHash { .. }) if !same_block(&block_cid, cid) => {
                    tracing::debug!(cid = %block_cid, "skipping a block with an unsupported hash");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if same_block(&block_cid, cid) {
                self.consumed.insert(k);
                return Ok(data);
            }
            if !self.consumed.contains(&key(&block_cid)) {
                self.hold(block_cid, data)?;
            }
        }
        Err(self
            .car_err(format!(
                "the CAR ended before block `{cid}`; the gateway does not hold the whole DAG"
            ))
            .into())
    }

    fn read_err(&self, e: iroh_car::Error) -> Error {
        match self.failure.lock().expect("failure lock").take() {
            Some(failure) => failure.into(),
            None => self.car_err(e.to_string()).into(),
        }
    }
}
