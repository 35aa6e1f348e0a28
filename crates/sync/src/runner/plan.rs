//! Planning: the repositories of every entry, and per repository its source tags (filtered)
//! and its destination tags.

use super::*;

/// The repositories of every entry, as the sources list them, sharded.
pub(super) fn repositories(shared: Arc<Shared>) -> BoxStream<'static, RepoRef> {
    let shard = shared.options.shard;
    let per_entry: Vec<BoxStream<'static, RepoRef>> = shared
        .entries
        .iter()
        .enumerate()
        .map(|(entry, e)| -> BoxStream<'static, RepoRef> {
            match &e.source {
                SyncSource::Store { name, .. } => Box::pin(stream::iter([RepoRef::Repo {
                    entry,
                    name: name.clone(),
                }])),
                SyncSource::Catalog {
                    source,
                    source_prefix,
                    ..
                } => {
                    let what = format!("the repositories of {source} under `{source_prefix}`");
                    Box::pin(source.list(source_prefix).map(move |item| match item {
                        Ok(name) => RepoRef::Repo { entry, name },
                        Err(error) => RepoRef::ListingFailed {
                            entry,
                            what: what.clone(),
                            error,
                        },
                    }))
                }
            }
        })
        .collect();
    Box::pin(stream::iter(per_entry).flatten().filter(move |r| {
        let keep = match (r, &shard) {
            (RepoRef::Repo { name, .. }, Some(shard)) => shard.contains(name),
            _ => true,
        };
        futures::future::ready(keep)
    }))
}

/// A failure of a repository as a whole (or of a catalog listing).
pub(super) fn repository_failure(
    entry: usize,
    repository: &str,
    source: StoreInfo,
    destination: StoreInfo,
    error: &Error,
) -> ImageReport {
    let mut report = ImageReport::new(
        entry,
        repository.to_string(),
        None,
        source,
        destination,
        Outcome::Failed,
    );
    report.reason = Some(error.to_string());
    report.failure = Some(FailureKind::of(error));
    report
}

/// Lists one repository's tags on both sides and plans its images.
pub(super) async fn plan(shared: Arc<Shared>, r: RepoRef) -> Plan {
    match r {
        RepoRef::ListingFailed { entry, what, error } => {
            let error = Error::Store {
                store: what.clone(),
                message: format!(
                    "listing {what} failed, so the sync covers only what was listed: {error}"
                ),
                temporary: false,
                source: Some(Box::new(error)),
            };
            let (source, destination) = entry_stores(&shared.entries[entry]);
            Plan {
                reports: vec![repository_failure(entry, "", source, destination, &error)],
                incomplete: Some(entry),
                ..Plan::default()
            }
        }
        RepoRef::Repo { entry, name } => {
            let e = &shared.entries[entry];
            let dry_run = shared.options.dry_run;
            let (source, destination, destination_info) = match &e.source {
                SyncSource::Store {
                    source,
                    destination,
                    ..
                } => (
                    source.clone(),
                    destination.clone(),
                    destination.info().clone(),
                ),
                SyncSource::Catalog {
                    source,
                    source_prefix,
                    destination,
                    destination_prefix,
                } => {
                    let rest = name.strip_prefix(source_prefix.as_str()).unwrap_or(&name);
                    let target = format!("{destination_prefix}{rest}");
                    let shown = destination.store_info(&target);
                    let opened = async {
                        let src = source.open_read(&name).await?;
                        let dst = destination.open_write(&target, !dry_run).await?;
                        Ok::<_, Error>((src, dst))
                    }
                    .await;
                    match opened {
                        Ok((src, Some(dst))) => {
                            let shown = dst.info().clone();
                            (src, dst, shown)
                        }
                        Ok((src, None)) => {
                            // A dry run into a store that does not exist yet: it holds nothing.
                            let empty: Arc<dyn WriteStore> = Arc::new(MemoryStore::new(target));
                            (src, empty, shown)
                        }
                        Err(error) => {
                            return Plan {
                                reports: vec![repository_failure(
                                    entry,
                                    &name,
                                    source.store_info(&name),
                                    shown,
                                    &error,
                                )],
                                listed: true,
                                ..Plan::default()
                            };
                        }
                    }
                }
            };
            let source_info = source.info().clone();
            match plan_repository(
                &shared,
                entry,
                &name,
                source.clone(),
                destination.clone(),
                &source_info,
                &destination_info,
            )
            .await
            {
                Ok(plan) => plan,
                Err(error) => Plan {
                    reports: vec![repository_failure(
                        entry,
                        &name,
                        source_info,
                        destination_info,
                        &error,
                    )],
                    listed: true,
                    ..Plan::default()
                },
            }
        }
    }
}

/// Every tag of `store`, with descriptors when the listing gives them.
pub(super) async fn list_tags(store: &dyn ReadStore) -> Result<Vec<(String, Option<Descriptor>)>> {
    let Some(lister) = store.capabilities().list_tags else {
        return Err(Error::NotSupported {
            store: store.to_string(),
            operation: "listing tags".into(),
        });
    };
    if let Some(resolved) = lister.list_tags_resolved().await? {
        return Ok(resolved.into_iter().map(|(t, d)| (t, Some(d))).collect());
    }
    Ok(lister
        .list_tags()
        .await?
        .into_iter()
        .map(|t| (t, None))
        .collect())
}

pub(super) async fn plan_repository(
    shared: &Shared,
    entry: usize,
    repository: &str,
    source: Arc<dyn ReadStore>,
    destination: Arc<dyn WriteStore>,
    source_info: &StoreInfo,
    destination_info: &StoreInfo,
) -> Result<Plan> {
    let e = &shared.entries[entry];
    let started = Instant::now();
    let src_tags = list_tags(source.as_ref())
        .await
        .map_err(|e| listing_error("the source's tags", e))?;
    let mut plan = Plan {
        listed: true,
        ..Plan::default()
    };
    let filtered = |tag: &str, why: FilteredBy| {
        let mut report = ImageReport::new(
            entry,
            repository.to_string(),
            Some(tag.to_string()),
            source_info.clone(),
            destination_info.clone(),
            Outcome::Filtered,
        );
        report.filtered_by = Some(why);
        report.duration = started.elapsed();
        report
    };
    let mut known: HashMap<String, Descriptor> = HashMap::new();
    let mut names: Vec<String> = Vec::with_capacity(src_tags.len());
    for (tag, descriptor) in src_tags {
        if referrers_tag_subject(&tag).is_some() {
            plan.reports.push(filtered(&tag, FilteredBy::Referrers));
            continue;
        }
        if let Some(d) = descriptor {
            known.insert(tag.clone(), d);
        }
        names.push(tag);
    }
    let selection = e.filter.select(&names);
    for (tag, why) in &selection.filtered {
        plan.reports.push(filtered(tag, *why));
    }
    let kept: HashSet<&String> = selection.kept.iter().collect();
    // Immutable tags are decided from a listing without a request each.
    let list = e.prune || selection.kept.iter().any(|t| e.immutable.matches(t));
    let (dst_tags, first) =
        destination_tags(destination.as_ref(), list, selection.kept.first()).await?;
    if e.prune {
        match &dst_tags {
            Some(tags) => {
                let mut doomed: Vec<(String, Option<Digest>)> = tags
                    .iter()
                    .filter(|(t, _)| e.filter.manages(t) && !kept.contains(t))
                    // A backup is not a tag that left the source.
                    .filter(|(t, _)| !e.backup.as_ref().is_some_and(|b| b.matches(t)))
                    .map(|(t, d)| (t.clone(), d.as_ref().map(|d| d.digest().clone())))
                    .collect();
                doomed.sort_by(|a, b| a.0.cmp(&b.0));
                if !doomed.is_empty() {
                    plan.prune = Some(PruneSet {
                        entry,
                        repository: repository.to_string(),
                        destination: destination.clone(),
                        source_info: source_info.clone(),
                        destination_info: destination_info.clone(),
                        tags: doomed,
                    });
                }
            }
            None => {
                let error = Error::NotSupported {
                    store: destination.to_string(),
                    operation: "listing tags, which pruning needs".into(),
                };
                plan.reports.push(repository_failure(
                    entry,
                    repository,
                    source_info.clone(),
                    destination_info.clone(),
                    &error,
                ));
            }
        }
    }
    for tag in selection.kept {
        let dst_tag = match (&dst_tags, &first) {
            (Some(tags), _) => match tags.get(&tag) {
                Some(d) => DstTag::Present(d.clone().map(Box::new)),
                None => DstTag::Absent,
            },
            (None, Some((t, d))) if *t == tag => DstTag::Present(Some(Box::new(d.clone()))),
            (None, _) => DstTag::Unknown,
        };
        plan.jobs.push(Job {
            entry,
            repository: repository.to_string(),
            immutable: e.immutable.matches(&tag),
            src_known: known.remove(&tag),
            tag,
            source: source.clone(),
            destination: destination.clone(),
            source_info: source_info.clone(),
            destination_info: destination_info.clone(),
            dst_tag,
        });
    }
    tracing::debug!(
        repository,
        selected = plan.jobs.len(),
        filtered = plan.reports.len(),
        ms = started.elapsed().as_millis() as u64,
        "repository planned"
    );
    Ok(plan)
}

/// The tags of the destination repository, and how: listed (`Some`, with descriptors where the
/// listing gives them) when the listing is free (a layout's index), when `list` (pruning needs
/// the listing, or immutable tags are decided by it), or when the destination lacks `first`, the first selected tag (a new or partly mirrored
/// repository: one listing instead of a request per tag). A destination that holds `first`
/// is a mirror kept up to date: nothing is listed (`None`), `first`'s descriptor is returned,
/// and every other tag is compared by a `HEAD` on both sides, as it would be after a listing.
#[allow(clippy::type_complexity)]
async fn destination_tags(
    destination: &dyn WriteStore,
    list: bool,
    first: Option<&String>,
) -> Result<(
    Option<HashMap<String, Option<Descriptor>>>,
    Option<(String, Descriptor)>,
)> {
    let listed = |tags: Result<Vec<(String, Option<Descriptor>)>>| match tags {
        Ok(tags) => Ok(Some(tags.into_iter().collect())),
        // A repository or layout not created yet.
        Err(e) if e.is_not_found() => Ok(Some(HashMap::new())),
        Err(Error::NotSupported { .. }) => Ok(None),
        Err(e) => Err(listing_error("the destination's tags", e)),
    };
    let Some(lister) = destination.capabilities().list_tags else {
        return Ok((None, None));
    };
    match lister.list_tags_resolved().await {
        Ok(Some(resolved)) => {
            let tags = resolved.into_iter().map(|(t, d)| (t, Some(d))).collect();
            return Ok((Some(tags), None));
        }
        Ok(None) => {}
        Err(e) if e.is_not_found() => return Ok((Some(HashMap::new()), None)),
        Err(e) => return Err(listing_error("the destination's tags", e)),
    }
    let first = match first {
        Some(tag) if !list => tag,
        _ => return Ok((listed(list_tags(destination).await)?, None)),
    };
    match super::image::peek_or_resolve(destination, first, true).await {
        Ok(d) => Ok((None, Some((first.clone(), d)))),
        Err(e) if e.is_not_found() => Ok((listed(list_tags(destination).await)?, None)),
        Err(e) => Err(listing_error("the destination's tags", e)),
    }
}

pub(super) fn listing_error(what: &str, error: Error) -> Error {
    match error {
        Error::Store {
            store,
            message,
            temporary,
            source,
        } => Error::Store {
            store,
            message: format!("listing {what}: {message}"),
            temporary,
            source,
        },
        other => other,
    }
}
