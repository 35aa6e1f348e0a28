//! One node of a copy: a manifest with its children, or a blob through the mount chain.

use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use oci_spec::image::{Descriptor, Digest};

use super::retry::with_retries;
use super::{Engine, Failed, NodeFuture, fetch_manifest};
use crate::error::{Error, Result};
use crate::model::{self, is_foreign_layer, is_manifest, media_type_str};
use crate::mount::{ChainOutcome, ChainPlan, Meter, MountRequest};
use crate::report::{Action, CopyEvent, CopyWarning, NodeReason, NodeReport};
use crate::transfers::{BlobTransfers, Claim};

impl Engine {
    /// The memoized copy of one node: every parent that shares it awaits the same future.
    pub(super) fn node(self: Arc<Self>, descriptor: Descriptor, path: Vec<Digest>) -> NodeFuture {
        let digest = descriptor.digest().clone();
        let mut nodes = self.nodes.lock().expect("nodes lock");
        if let Some(f) = nodes.get(&digest) {
            return f.clone();
        }
        let this = self.clone();
        let fut = async move {
            match this.copy_node(&descriptor, path).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let mut slot = this.failure.lock().expect("failure lock");
                    if slot.is_none() {
                        *slot = Some(e);
                    }
                    Err(Failed)
                }
            }
        }
        .boxed()
        .shared();
        nodes.insert(digest, fut.clone());
        fut
    }

    fn emit(&self, event: CopyEvent) {
        if let Some(sink) = &self.options.on_event {
            sink(&event);
        }
    }

    /// Runs `step` of the node `descriptor` by the copy's retry policy, counting and
    /// announcing its retries.
    async fn step<T, F, Fut>(&self, what: &str, descriptor: &Descriptor, step: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let retried = |retry: u32, error: &Error| {
            *self
                .retries
                .lock()
                .expect("retries lock")
                .entry(descriptor.digest().clone())
                .or_default() += 1;
            self.emit(CopyEvent::Retrying {
                descriptor: Some(descriptor.clone()),
                retry,
                error: error.to_string(),
            });
        };
        with_retries(&self.options.retry, what, step, retried).await
    }

    fn finish(&self, mut node: NodeReport) {
        node.retries = self
            .retries
            .lock()
            .expect("retries lock")
            .get(node.descriptor.digest())
            .copied()
            .unwrap_or(0);
        tracing::debug!(
            digest = %node.descriptor.digest(),
            action = node.action.verb(),
            strategy = node.strategy.as_ref().map_or("", |s| s.as_str()),
            bytes = node.bytes,
            "node done"
        );
        self.emit(CopyEvent::Done(Box::new(node.clone())));
        self.report.lock().expect("report lock").push(node);
    }

    fn simple(descriptor: &Descriptor, action: Action, started: Instant) -> NodeReport {
        NodeReport {
            descriptor: descriptor.clone(),
            action,
            strategy: None,
            from: None,
            method: None,
            reason: None,
            bytes: 0,
            retries: 0,
            duration: started.elapsed(),
            attempts: Vec::new(),
            warnings: Vec::new(),
        }
    }

    async fn copy_node(self: &Arc<Self>, descriptor: &Descriptor, path: Vec<Digest>) -> Result<()> {
        let media_type = media_type_str(descriptor);
        if is_foreign_layer(&media_type) {
            let mut node = Self::simple(descriptor, Action::Skipped, Instant::now());
            node.reason = Some(NodeReason::ForeignLayer);
            self.finish(node);
            return Ok(());
        }
        if is_manifest(&media_type) {
            self.copy_manifest(descriptor, path).await
        } else {
            self.copy_blob(descriptor).await
        }
    }

    async fn copy_manifest(
        self: &Arc<Self>,
        descriptor: &Descriptor,
        mut path: Vec<Digest>,
    ) -> Result<()> {
        let started = Instant::now();
        let manifest = {
            let _permit = self.permits.acquire().await.expect("semaphore open");
            let known_absent = self.options.root_absent
                && self
                    .root_tag
                    .as_ref()
                    .is_some_and(|(root, _)| root == descriptor.digest());
            if !known_absent
                && self
                    .step("exists", descriptor, || self.dst_holds(descriptor))
                    .await?
            {
                self.finish(Self::simple(descriptor, Action::Exists, started));
                return Ok(());
            }
            self.step("fetch manifest", descriptor, || {
                fetch_manifest(self.src.as_ref(), descriptor, self.options.manifest_limit)
            })
            .await?
        };
        let src_info = self.src.info().clone();
        self.options
            .locations
            .record(descriptor.digest(), &src_info);
        let children = manifest.successors();
        let blob_digests: Vec<Digest> = children
            .iter()
            .filter(|d| !is_manifest(&media_type_str(d)))
            .map(|d| d.digest().clone())
            .collect();
        self.options.locations.record_all(&blob_digests, &src_info);

        path.push(descriptor.digest().clone());
        let mut waits = Vec::with_capacity(children.len());
        for child in children {
            if let Some(pos) = path.iter().position(|d| d == child.digest()) {
                let chain: Vec<String> = path[pos..]
                    .iter()
                    .map(|d| format!("`{}`", model::short_digest(d)))
                    .collect();
                return Err(Error::Cycle {
                    digest: child.digest().clone(),
                    path: chain.join(" -> "),
                });
            }
            waits.push(self.clone().node(child, path.clone()));
        }
        // Children strictly before the parent: every child must be at the destination.
        if futures::future::try_join_all(waits).await.is_err() {
            return Err(Error::Cancelled(format!(
                "a child of `{}` failed",
                descriptor.digest()
            )));
        }

        if self.options.dry_run {
            self.finish(Self::simple(descriptor, Action::WouldCopy, started));
            return Ok(());
        }
        {
            let _permit = self.permits.acquire().await.expect("semaphore open");
            self.check_running(&format!("manifest `{}` was pushed", descriptor.digest()))?;
            self.emit(CopyEvent::Copying(descriptor.clone()));
            let size = manifest.bytes.len() as u64;
            let bytes = || crate::store::bytes_stream(manifest.bytes.clone());
            match &self.root_tag {
                Some((root, tag)) if root == descriptor.digest() => {
                    self.step("push root", descriptor, || {
                        self.dst.push_tagged(descriptor, bytes(), tag)
                    })
                    .await?;
                    self.root_tagged
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                _ => {
                    self.step("push manifest", descriptor, || {
                        self.dst.push(descriptor, bytes())
                    })
                    .await?;
                }
            }
            self.emit(CopyEvent::Bytes {
                descriptor: descriptor.clone(),
                done: size,
                total: size,
            });
        }
        self.copied_manifests
            .lock()
            .expect("manifests lock")
            .push(descriptor.clone());
        let mut node = Self::simple(descriptor, Action::Copied, started);
        node.bytes = descriptor.size();
        self.finish(node);
        Ok(())
    }

    /// Fails when the copy is stopping: nothing new starts then.
    fn check_running(&self, what: &str) -> Result<()> {
        match self.options.stop.level() {
            crate::StopLevel::Run => Ok(()),
            _ => Err(Error::Cancelled(format!("stopped before {what}"))),
        }
    }

    async fn copy_blob(self: &Arc<Self>, descriptor: &Descriptor) -> Result<()> {
        self.check_running(&format!("blob `{}` started", descriptor.digest()))?;
        let lead = match &self.options.transfers {
            Some(transfers) if !self.options.dry_run => {
                match self.claim_transfer(transfers, descriptor).await {
                    Some(lead) => Some(lead),
                    None => return Ok(()),
                }
            }
            _ => None,
        };
        self.step("copy blob", descriptor, || self.copy_blob_once(descriptor))
            .await?;
        if let Some(lead) = lead {
            lead.landed(self.dst.info());
        }
        Ok(())
    }

    /// Claims the run-wide transfer of the blob to the destination, waiting (without holding
    /// a permit) while another copy brings it to this authority or this store. `None` when
    /// this run already brought it to this very store (reported as present, without a
    /// request).
    async fn claim_transfer(
        self: &Arc<Self>,
        transfers: &Arc<BlobTransfers>,
        descriptor: &Descriptor,
    ) -> Option<crate::transfers::Lead> {
        let started = Instant::now();
        loop {
            match transfers.claim(self.dst.info(), descriptor.digest()) {
                Claim::Lead(lead) => return Some(lead),
                Claim::Present => {
                    let mut node = Self::simple(descriptor, Action::Exists, started);
                    node.reason = Some(NodeReason::BroughtEarlierInRun);
                    self.finish(node);
                    return None;
                }
                Claim::Wait(wait) => {
                    tracing::debug!(
                        digest = %descriptor.digest(),
                        destination = %self.dst,
                        "waiting for another copy's transfer of the blob"
                    );
                    wait.done().await;
                }
            }
        }
    }

    /// The copy's own existence check of a node at the destination: none when the destination
    /// knows it lacks it ([`crate::KnownAbsent`]), else [`ReadStore::exists`].
    async fn dst_holds(&self, descriptor: &Descriptor) -> Result<bool> {
        if let Some(known) = self.dst.capabilities().known_absent
            && known.known_absent(descriptor).await
        {
            return Ok(false);
        }
        self.dst.exists(descriptor).await
    }

    /// One try of [`Engine::copy_blob`]: the existence check and the mount chain under a
    /// request permit, the fallback stream under a transfer permit.
    async fn copy_blob_once(self: &Arc<Self>, descriptor: &Descriptor) -> Result<()> {
        let request_permit = self.requests.acquire().await.expect("semaphore open");
        let started = Instant::now();
        let digest = descriptor.digest();
        let candidates = self.options.locations.locations(digest);
        let meter = Meter::new(descriptor, self.options.on_event.clone());
        let request = MountRequest::new(descriptor, self.src.as_ref(), self.dst.as_ref())
            .with_candidates(&candidates)
            .with_meter(&meter);
        let chain = &self.options.chain;
        if (self.options.dry_run || !chain.probes_destination(&request))
            && self.dst_holds(descriptor).await?
        {
            self.options.locations.record(digest, self.dst.info());
            self.finish(Self::simple(descriptor, Action::Exists, started));
            return Ok(());
        }
        if self.options.dry_run {
            // Reads only: each strategy says what it would do without writing.
            let mut node = Self::simple(descriptor, Action::WouldCopy, started);
            match chain.plan(&request).await {
                ChainPlan::WouldMount {
                    strategy,
                    from,
                    method,
                } => {
                    node.action = Action::WouldMount;
                    node.strategy = Some(strategy);
                    node.from = Some(from);
                    node.method = Some(method);
                }
                ChainPlan::AlreadyPresent { strategy } => {
                    node.action = Action::Exists;
                    node.strategy = Some(strategy);
                }
                ChainPlan::WouldTry { strategy, reason } => {
                    node.action = Action::WouldTry;
                    node.strategy = Some(strategy);
                    node.reason = Some(NodeReason::WouldTry(reason));
                }
                _ => {}
            }
            node.duration = started.elapsed();
            self.finish(node);
            return Ok(());
        }
        let (outcome, attempts) = chain.mount(&request).await?;
        let mut node = Self::simple(descriptor, Action::Copied, started);
        node.attempts = attempts;
        match outcome {
            ChainOutcome::Mounted {
                strategy,
                from,
                method,
                corrupt,
            } => {
                // The report carries the warning (`ferry cp` prints it); the log says it at
                // `info`, so a program printing warnings is not told twice.
                for c in corrupt {
                    tracing::info!(
                        %digest,
                        location = %crate::redact::text(&c.location.to_string()),
                        reason = %crate::redact::text(&c.reason),
                        from = %crate::redact::text(&from.to_string()),
                        "a copy of the blob failed verification; it was taken from elsewhere"
                    );
                    node.warnings.push(CopyWarning::CorruptCopy {
                        digest: digest.clone(),
                        location: c.location,
                        is_source: c.is_source,
                        reason: c.reason,
                        healed_from: from.clone(),
                    });
                }
                node.action = Action::Mounted;
                node.strategy = Some(strategy);
                node.from = Some(from);
                node.method = Some(method);
            }
            ChainOutcome::AlreadyPresent { strategy } => {
                node.action = Action::Exists;
                node.strategy = Some(strategy);
            }
            ChainOutcome::Fallback { upload } => {
                drop(request_permit);
                let _permit = self.permits.acquire().await.expect("semaphore open");
                if let Err(e) = self.check_running(&format!("blob `{digest}` started")) {
                    if let Some(prepared) = upload {
                        let _ = prepared.cancel().await;
                    }
                    return Err(e);
                }
                let stream = request.count_bytes(self.src.fetch(descriptor).await?);
                match upload {
                    Some(prepared) => prepared.upload(descriptor, stream).await?,
                    None => self.dst.push(descriptor, stream).await?,
                }
                // The destination verified size and digest before committing.
                self.options.locations.record(digest, self.src.info());
            }
        }
        node.bytes = meter.bytes();
        self.options.locations.record(digest, self.dst.info());
        node.duration = started.elapsed();
        self.finish(node);
        Ok(())
    }

    /// Copies the referrers of every manifest copied, and theirs, until none is left.
    pub(super) async fn copy_referrers(self: Arc<Self>) -> Result<(), Failed> {
        let mut visited = std::collections::HashSet::new();
        loop {
            let pending: Vec<Descriptor> =
                std::mem::take(&mut *self.copied_manifests.lock().expect("manifests lock"));
            let pending: Vec<Descriptor> = pending
                .into_iter()
                .filter(|d| visited.insert(d.digest().clone()))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            for subject in pending {
                let retried = |retry: u32, error: &Error| {
                    self.step_retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.emit(CopyEvent::Retrying {
                        descriptor: Some(subject.clone()),
                        retry,
                        error: error.to_string(),
                    });
                };
                let listed = with_retries(
                    &self.options.retry,
                    "referrers",
                    || self.src.referrers(&subject),
                    retried,
                );
                let referrers = match listed.await {
                    Ok(r) => r,
                    Err(e) => {
                        *self.failure.lock().expect("failure lock") = Some(e);
                        return Err(Failed);
                    }
                };
                tracing::debug!(subject = %subject.digest(), count = referrers.len(), "referrers");
                let waits: Vec<_> = referrers
                    .into_iter()
                    .map(|r| self.clone().node(r, Vec::new()))
                    .collect();
                futures::future::try_join_all(waits).await?;
            }
        }
    }
}
