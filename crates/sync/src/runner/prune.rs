//! Pruning: deleting the destination tags the filtered sources no longer have, behind its
//! guards.

use std::collections::HashMap;
use std::time::Instant;

use oci_spec::image::{Descriptor, Digest};

use super::{PruneSet, Run, entry_stores};
use crate::BackupTemplate;
use crate::filter::referrers_tag_subject;
use crate::report::{FailureKind, ImageReport, Outcome};
use ferry_core::StopLevel;
use ferry_core::error::{Error, Result};
use ferry_core::model::OCI_MANIFEST;
use ferry_core::store::ReadStore;

impl Run {
    /// Deletes the destination tags the filtered sources no longer have, entry by entry,
    /// unless the run was stopped, an entry's source listing was incomplete, or an entry has
    /// more than its `prune_max`.
    pub(super) async fn prune(&mut self) {
        let sets = std::mem::take(&mut self.prune_sets);
        if sets.is_empty() {
            return;
        }
        if self.interrupted() {
            self.prune_skipped
                .push("the sync was stopped before it was done; nothing was pruned".into());
            return;
        }
        let mut by_entry: HashMap<usize, Vec<PruneSet>> = HashMap::new();
        for set in sets {
            by_entry.entry(set.entry).or_default().push(set);
        }
        let mut entries: Vec<usize> = by_entry.keys().copied().collect();
        entries.sort_unstable();
        for entry in entries {
            let sets = by_entry.remove(&entry).expect("listed key");
            if self.incomplete.contains(&entry) {
                self.prune_skipped.push(format!(
                    "entry {}: the source listing was incomplete, so nothing was pruned",
                    entry + 1
                ));
                continue;
            }
            self.prune_entry(entry, sets).await;
        }
    }

    async fn prune_entry(&mut self, entry: usize, sets: Vec<PruneSet>) {
        let max = self.shared.entries[entry].prune_max;
        let dry_run = self.options().dry_run;
        // A referrers tag whose subject is still at the destination is never deleted.
        let mut doomed: Vec<(&PruneSet, String, Option<Digest>)> = Vec::new();
        for set in &sets {
            for (tag, digest) in &set.tags {
                if let Some(subject) = referrers_tag_subject(tag) {
                    let probe = Descriptor::new(OCI_MANIFEST.into(), 0, subject);
                    match set.destination.exists(&probe).await {
                        Ok(false) => {}
                        Ok(true) => continue,
                        Err(e) => {
                            tracing::warn!(tag, error = %e, "cannot tell whether a referrers tag's subject is there; keeping the tag");
                            continue;
                        }
                    }
                }
                doomed.push((set, tag.clone(), digest.clone()));
            }
        }
        if doomed.len() > max {
            let names: Vec<String> = doomed
                .iter()
                .take(5)
                .map(|(s, t, _)| format!("{}:{t}", s.destination_info))
                .collect();
            let more = if doomed.len() > names.len() {
                format!(", and {} more", doomed.len() - names.len())
            } else {
                String::new()
            };
            let (source, destination) = entry_stores(&self.shared.entries[entry]);
            let mut report = ImageReport::new(
                entry,
                String::new(),
                None,
                source,
                destination,
                Outcome::Failed,
            );
            report.reason = Some(format!(
                "prune: {} destination tags are gone from the source ({}{more}), more than \
                 the {max} that pruning may delete; nothing was pruned",
                doomed.len(),
                names.join(", ")
            ));
            report.failure = Some(FailureKind::PruneGuard);
            self.record(report);
            return;
        }
        for (set, tag, digest) in doomed {
            if self.options().stop.level() != StopLevel::Run {
                self.prune_skipped
                    .push("the sync was stopped while pruning; the rest was not pruned".into());
                return;
            }
            let started = Instant::now();
            let mut report = ImageReport::new(
                entry,
                set.repository.clone(),
                Some(tag.clone()),
                set.source_info.clone(),
                set.destination_info.clone(),
                Outcome::Pruned,
            );
            report.digest = digest;
            let backup = self.shared.entries[entry].backup.clone();
            if dry_run {
                report.reason = Some("dry run: not deleted".into());
            } else if let Some(template) = &backup
                && let Err(e) = self
                    .back_up_before_pruning(entry, set, &tag, template)
                    .await
            {
                report.outcome = Outcome::Failed;
                report.failure = Some(FailureKind::of(&e));
                report.reason = Some(format!(
                    "prune: backing up the tag before deleting it: {e}; the tag was not deleted"
                ));
            } else {
                let result = match set.destination.capabilities().delete_tag {
                    Some(deleter) => deleter.delete_tag(&tag).await,
                    None => Err(Error::NotSupported {
                        store: set.destination.to_string(),
                        operation: "deleting tags".into(),
                    }),
                };
                match result {
                    Ok(()) => {}
                    // Gone already: what pruning wanted.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        report.outcome = Outcome::Failed;
                        report.failure = Some(FailureKind::of(&e));
                        report.reason = Some(format!("prune: {e}"));
                    }
                }
            }
            report.duration = started.elapsed();
            self.record(report);
        }
    }

    /// Tags what `tag` names with its backup name, and records that.
    async fn back_up_before_pruning(
        &mut self,
        entry: usize,
        set: &PruneSet,
        tag: &str,
        template: &BackupTemplate,
    ) -> Result<()> {
        let started = Instant::now();
        let old = super::image::peek_or_resolve(set.destination.as_ref(), tag, true).await?;
        let name = template.render(tag, old.digest(), self.shared.started_at)?;
        set.destination.tag(&old, &name).await?;
        tracing::info!(destination = %set.destination_info, tag, backup = %name, "backed up before pruning");
        let mut report = ImageReport::new(
            entry,
            set.repository.clone(),
            Some(tag.to_string()),
            set.source_info.clone(),
            set.destination_info.clone(),
            Outcome::BackedUp,
        );
        report.digest = Some(old.digest().clone());
        report.backup = Some(name);
        report.duration = started.elapsed();
        self.record(report);
        Ok(())
    }
}
