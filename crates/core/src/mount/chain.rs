//! An ordered list of strategies, tried in turn.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::time::Instant;

use super::meter::Meter;
use super::{CorruptLocation, MountOutcome, MountPlan, MountRequest, MountStrategy};
use crate::error::Result;
use crate::locations::Location;
use crate::report::{AttemptOutcome, MountAttempt, MountMethod, StrategyName};
use crate::store::PreparedUpload;

/// What a whole chain achieved for one blob.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChainOutcome {
    /// A strategy mounted the blob.
    Mounted {
        /// The strategy's name.
        strategy: StrategyName,
        /// Where from.
        from: Location,
        /// How.
        method: MountMethod,
        /// Places tried first whose copy failed verification.
        corrupt: Vec<CorruptLocation>,
    },
    /// A strategy found the blob already at the destination.
    AlreadyPresent {
        /// The strategy's name.
        strategy: StrategyName,
    },
    /// Nothing mounted; the blob must be streamed, into `upload` when one was prepared.
    Fallback {
        /// The write path left by the last strategy that prepared one.
        upload: Option<Box<dyn PreparedUpload>>,
    },
}

/// What a whole chain expects for one blob (see [`MountChain::plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainPlan {
    /// A strategy expects to mount the blob.
    WouldMount {
        /// The strategy's name.
        strategy: StrategyName,
        /// Where from.
        from: Location,
        /// How.
        method: MountMethod,
    },
    /// A strategy found the blob at the destination.
    AlreadyPresent {
        /// The strategy's name.
        strategy: StrategyName,
    },
    /// No strategy can tell; the first that would try is named. The blob is streamed if it
    /// does not mount.
    WouldTry {
        /// The strategy's name.
        strategy: StrategyName,
        /// What it would try.
        reason: String,
    },
    /// No strategy applies: the blob would be streamed.
    Copy,
}

/// An ordered list of strategies, built at run time, tried in turn until one mounts.
#[derive(Clone, Default)]
pub struct MountChain {
    strategies: Vec<Arc<dyn MountStrategy>>,
}

impl MountChain {
    /// An empty chain: every blob is streamed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a strategy.
    pub fn with(mut self, strategy: impl MountStrategy + 'static) -> Self {
        self.strategies.push(Arc::new(strategy));
        self
    }

    /// Appends a shared strategy.
    pub fn push(&mut self, strategy: Arc<dyn MountStrategy>) {
        self.strategies.push(strategy);
    }

    /// The strategies, in order.
    pub fn strategies(&self) -> &[Arc<dyn MountStrategy>] {
        &self.strategies
    }

    /// Whether the chain has no strategy.
    pub fn is_empty(&self) -> bool {
        self.strategies.is_empty()
    }

    /// Whether some strategy's attempt on `request` also probes the destination.
    pub fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        self.strategies
            .iter()
            .any(|s| s.probes_destination(request))
    }

    /// Asks each strategy in order what it would do ([`MountStrategy::plan`], reads only):
    /// the first that would mount the blob or finds it present decides; else the first that
    /// would try is named; else the blob would be streamed. An `Err` from a strategy's plan
    /// is logged and taken as "would try" (the copy would try it and see).
    pub async fn plan(&self, request: &MountRequest<'_>) -> ChainPlan {
        let digest = request.descriptor.digest();
        let mut first_try: Option<ChainPlan> = None;
        for strategy in &self.strategies {
            let plan = match strategy.plan(request).await {
                Ok(plan) => plan,
                Err(e) => MountPlan::would_try(format!("planning failed: {e}")),
            };
            tracing::debug!(strategy = strategy.name(), %digest, plan = ?plan, "mount plan");
            let name = StrategyName::new(strategy.name());
            match plan {
                MountPlan::WouldMount { from, method } => {
                    return ChainPlan::WouldMount {
                        strategy: name,
                        from,
                        method,
                    };
                }
                MountPlan::AlreadyPresent => return ChainPlan::AlreadyPresent { strategy: name },
                MountPlan::WouldTry { reason } => {
                    first_try.get_or_insert(ChainPlan::WouldTry {
                        strategy: name,
                        reason,
                    });
                }
                MountPlan::NotApplicable { .. } => {}
            }
        }
        first_try.unwrap_or(ChainPlan::Copy)
    }

    /// Tries each strategy in order. Returns what the chain achieved and every attempt.
    ///
    /// A prepared upload left by a strategy is kept for the fallback copy; one left by an
    /// earlier strategy is cancelled when a later one prepares another or mounts. An `Err` from
    /// a strategy ends the chain and is returned: strategies report "could not" as outcomes.
    pub async fn mount(
        &self,
        request: &MountRequest<'_>,
    ) -> Result<(ChainOutcome, Vec<MountAttempt>)> {
        let mut attempts = Vec::with_capacity(self.strategies.len());
        let mut prepared: Option<Box<dyn PreparedUpload>> = None;
        let digest = request.descriptor.digest();
        let counted = || request.meter.map_or(0, Meter::bytes);
        for strategy in &self.strategies {
            let started = Instant::now();
            let bytes_before = counted();
            let result = strategy.mount(request).await;
            let duration = started.elapsed();
            let bytes = counted() - bytes_before;
            let outcome = match result {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(strategy = strategy.name(), %digest, error = %e, "mount attempt failed");
                    attempts.push(MountAttempt {
                        strategy: StrategyName::new(strategy.name()),
                        outcome: AttemptOutcome::Error,
                        detail: e.to_string(),
                        duration,
                        bytes,
                    });
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    return Err(e);
                }
            };
            let detail = match &outcome {
                MountOutcome::Mounted { from, .. } => from.shown_from(request.destination.info()),
                MountOutcome::AlreadyPresent => String::new(),
                MountOutcome::NotApplicable { reason } | MountOutcome::Declined { reason, .. } => {
                    reason.clone()
                }
            };
            tracing::debug!(
                strategy = strategy.name(),
                %digest,
                outcome = %outcome.kind(),
                detail = %detail,
                ms = duration.as_millis() as u64,
                "mount attempt"
            );
            attempts.push(MountAttempt {
                strategy: StrategyName::new(strategy.name()),
                outcome: outcome.kind(),
                detail,
                duration,
                bytes,
            });
            match outcome {
                MountOutcome::Mounted {
                    from,
                    method,
                    corrupt,
                } => {
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    let strategy = StrategyName::new(strategy.name());
                    return Ok((
                        ChainOutcome::Mounted {
                            strategy,
                            from,
                            method,
                            corrupt,
                        },
                        attempts,
                    ));
                }
                MountOutcome::AlreadyPresent => {
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    let strategy = StrategyName::new(strategy.name());
                    return Ok((ChainOutcome::AlreadyPresent { strategy }, attempts));
                }
                MountOutcome::NotApplicable { .. } => {}
                MountOutcome::Declined { upload, .. } => {
                    if let Some(new) = upload
                        && let Some(old) = prepared.replace(new)
                    {
                        let _ = old.cancel().await;
                    }
                }
            }
        }
        Ok((ChainOutcome::Fallback { upload: prepared }, attempts))
    }
}

impl Display for MountChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MountChain[")?;
        for (i, s) in self.strategies.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        f.write_str("]")
    }
}

impl Debug for MountChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.strategies.iter()).finish()
    }
}
