//! [`DistributionStorageMount`]: links a blob into a registry's repository at the storage
//! layer.

use std::fmt;

use async_trait::async_trait;
use ferry_core::model::{DigestAlgorithm, is_manifest};
use ferry_core::{
    CorruptLocation, Descriptor, Hasher, MountMethod, MountOutcome, MountPlan, MountRequest,
    MountStrategy, Result, StoreInfo,
};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::paths::{V2, blob_data, check_repository, layer_link, link_content};
use super::root::{Backend, StorageRoot};

/// The strategy's name, shown in reports.
pub const NAME: &str = "distribution-storage";

/// A [`MountStrategy`] for registries that keep their data in the CNCF distribution storage
/// layout on storage this process can reach (see the [module docs](super) for what operators
/// configure).
///
/// For a copy into a registry whose storage root is configured, from a registry whose root
/// is configured (or of a blob the blob-location cache saw in a repository of one), it makes
/// the blob's `data` present under the destination root (nothing to do when it is there
/// already, as when both registries share one root; a hardlink between filesystem roots; a
/// server-side copy between roots in one S3 bucket), then writes the destination
/// repository's layer link. No blob byte is uploaded through this process; the source data
/// is read and hashed first unless its root is [trusted](StorageRoot::with_trusted).
///
/// ```no_run
/// # fn demo() -> ferry_core::Result<()> {
/// use ferry_core::{CopyOptions, MountChain};
/// use ferry_fs_store::distribution_storage::{DistributionStorageMount, StorageRoot};
///
/// let mount = DistributionStorageMount::new()
///     .with_registry("registry-a.example:5000", StorageRoot::parse("file:///srv/registry-a", [("trusted", "true")])?)
///     .with_registry("registry-b.example:5000", StorageRoot::parse("file:///srv/registry-b", None::<(&str, &str)>)?);
/// let options = CopyOptions::default().with_chain(MountChain::new().with(mount));
/// # let _ = options; Ok(()) }
/// ```
///
/// An attempt that could not reach a root's storage (a network or server error, not a
/// missing object or refused credentials) is declined as
/// [unreachable](MountOutcome::unreachable): wrap the strategy in a
/// [`Resting`](ferry_core::layer::Resting) layer
/// (`mount.resting_after_failure(Duration::from_secs(30))`, as `ferry cp` does) so that the
/// blobs of a copy are declined at once instead of each waiting for the same timeout.
#[derive(Debug, Clone, Default)]
pub struct DistributionStorageMount {
    registries: Vec<(String, StorageRoot)>,
}

impl DistributionStorageMount {
    /// A strategy that knows no registry yet: it applies to nothing until
    /// [`Self::with_registry`] names some.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares that the registry `authority` (`host:port` as the stores' [`StoreInfo`] name
    /// it, such as `registry-a.example:5000`) keeps its data under `root`. A second call for
    /// the same authority replaces the first.
    pub fn with_registry(mut self, authority: impl Into<String>, root: StorageRoot) -> Self {
        self.add_registry(authority, root);
        self
    }

    /// Like [`Self::with_registry`], in place.
    pub fn add_registry(&mut self, authority: impl Into<String>, root: StorageRoot) {
        let authority = normalize(&authority.into());
        match self.registries.iter_mut().find(|(a, _)| *a == authority) {
            Some(entry) => entry.1 = root,
            None => self.registries.push((authority, root)),
        }
    }

    /// The root configured for the registry `authority`.
    pub fn root(&self, authority: &str) -> Option<&StorageRoot> {
        let authority = normalize(authority);
        self.registries
            .iter()
            .find(|(a, _)| *a == authority)
            .map(|(_, r)| r)
    }

    /// The configured registries, in the order they were added.
    pub fn registries(&self) -> impl Iterator<Item = (&str, &StorageRoot)> {
        self.registries.iter().map(|(a, r)| (a.as_str(), r))
    }

    /// The destination's root and the places the blob may be taken from when the strategy
    /// applies to the request, else why not. The places are the source repository, then the
    /// registry repositories where the blob-location cache saw it, when their registries have
    /// a root.
    fn sources_for<'a>(
        &'a self,
        request: &MountRequest<'a>,
    ) -> std::result::Result<(&'a StorageRoot, Vec<Source<'a>>), String> {
        let src = request.source.info();
        let dst = request.destination.info();
        if dst.scheme != StoreInfo::REGISTRY {
            return Err(format!(
                "destination {} is not a registry (scheme `{}`)",
                request.destination, dst.scheme
            ));
        }
        let Some(dst_root) = self.root(&dst.authority) else {
            return Err(format!(
                "no storage root is configured for the destination registry `{}`; configure \
                 its `storage` to mount blobs into it at the storage layer",
                dst.authority
            ));
        };
        if is_manifest(request.descriptor.media_type().as_ref()) {
            return Err("manifests are pushed over HTTP, not linked at the storage layer".into());
        }
        let digest = request.descriptor.digest();
        if !matches!(
            digest.algorithm(),
            DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512
        ) {
            return Err(format!(
                "digest `{digest}` uses an algorithm the distribution layout does not store"
            ));
        }
        check_repository(&dst.namespace)?;

        let mut sources: Vec<Source<'a>> = Vec::new();
        let source_problem = if src.scheme != StoreInfo::REGISTRY {
            Some(format!(
                "source {} is not a registry (scheme `{}`)",
                request.source, src.scheme
            ))
        } else if let Some(root) = self.root(&src.authority) {
            match check_repository(&src.namespace) {
                Ok(()) => {
                    sources.push(Source {
                        authority: &src.authority,
                        namespace: &src.namespace,
                        root,
                        is_source: true,
                    });
                    None
                }
                Err(reason) => Some(reason),
            }
        } else {
            Some(format!(
                "no storage root is configured for the source registry `{}`; configure its \
                 `storage` to mount blobs from it at the storage layer",
                src.authority
            ))
        };
        for candidate in request.candidates {
            let c = &candidate.store;
            if c.scheme != StoreInfo::REGISTRY
                || (c.same_authority(dst) && c.namespace == dst.namespace)
                || check_repository(&c.namespace).is_err()
                || sources.iter().any(|s| {
                    normalize(s.authority) == normalize(&c.authority) && s.namespace == c.namespace
                })
            {
                continue;
            }
            if let Some(root) = self.root(&c.authority) {
                sources.push(Source {
                    authority: &c.authority,
                    namespace: &c.namespace,
                    root,
                    is_source: false,
                });
            }
        }
        match (sources.is_empty(), source_problem) {
            (true, Some(problem)) if request.candidates.is_empty() => Err(problem),
            (true, Some(problem)) => Err(format!(
                "{problem}, and none of the {} other places the blob was seen is a repository \
                 of a registry with a storage root",
                request.candidates.len()
            )),
            (true, None) => Err("no place to take the blob from".into()),
            (false, _) => Ok((dst_root, sources)),
        }
    }

    /// A storage operation failed: the reason names the operation, the object and what to
    /// check; a failure to reach the storage of a network backend is unreachable.
    /// Reads what the destination repository holds of a blob: its link file and the size of
    /// the data file (each `None` when absent). Used alike by `plan` and `mount`.
    async fn at_destination(
        &self,
        dst_root: &StorageRoot,
        dst_data: &Path,
        dst_link: &Path,
    ) -> std::result::Result<AtDestination, Refusal> {
        let store = dst_root.store().as_ref();
        let link = read_small(store, dst_link).await.map_err(|e| {
            let what = format!("reading the link `{}`", relative(dst_root, dst_link));
            self.failed(&what, dst_root, &e)
        })?;
        let data_size = size_of(store, dst_data).await.map_err(|e| {
            let what = format!("looking up `{}`", relative(dst_root, dst_data));
            self.failed(&what, dst_root, &e)
        })?;
        Ok(AtDestination { link, data_size })
    }

    fn failed(&self, what: &str, root: &StorageRoot, e: &object_store::Error) -> Refusal {
        let hint = match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                "; check the credentials configured for this storage"
            }
            _ => "; check that the storage is reachable and the root is right",
        };
        // The backend's message may quote a URL with the credentials it was given.
        let reason = format!(
            "{what} in storage `{}` failed: {}{hint}",
            root.url(),
            ferry_core::redact::text(&e.to_string())
        );
        let unreachable =
            matches!(e, object_store::Error::Generic { .. }) && root.local_path().is_none();
        if unreachable {
            tracing::debug!(root = root.url(), %reason, "storage unreachable");
        }
        Refusal {
            reason,
            unreachable,
            damaged: false,
        }
    }

    /// Makes the blob's data present at `dst_data` under `dst_root`, taken from `source`:
    /// checks that the source repository links the blob, then (unless the data is there
    /// already) that the roots can copy server-side, that the source data has the right size
    /// and, unless the source root is trusted, the right digest, and copies it.
    async fn take_from(
        &self,
        source: &Source<'_>,
        dst_root: &StorageRoot,
        dst_data: &Path,
        data_present: bool,
        descriptor: &Descriptor,
        plan_only: bool,
    ) -> Taken {
        let digest = descriptor.digest();
        let src_root = source.root;
        let src_store = src_root.store().as_ref();

        // The source repository must link the blob: the storage holds blobs of every
        // repository, and a mount must not hand out one the source repository lacks.
        let src_link = layer_link(src_root.prefix(), source.namespace, digest);
        let src_link_s = relative(src_root, &src_link);
        match read_small(src_store, &src_link).await {
            Ok(Some(content)) if links_to(&content, descriptor) => {}
            Ok(Some(_)) => {
                return Taken::Declined(
                    format!(
                        "the link `{src_link_s}` in `{}` names another digest than `{digest}`",
                        src_root.url()
                    )
                    .into(),
                );
            }
            Ok(None) => {
                return Taken::NotApplicable(format!(
                    "the source repository `{}` has no link `{src_link_s}` in `{}`: the blob is \
                     not in that repository's storage (is `{}` the registry's root directory?)",
                    source.namespace,
                    src_root.url(),
                    src_root.url()
                ));
            }
            Err(e) => {
                return Taken::Declined(self.failed(
                    &format!("reading the link `{src_link_s}`"),
                    src_root,
                    &e,
                ));
            }
        }
        if data_present {
            return Taken::Data(MountMethod::LinkOnly);
        }

        if let Some(reason) = dst_root.copy_obstacle(src_root) {
            return Taken::NotApplicable(reason);
        }
        let src_data = blob_data(src_root.prefix(), digest);
        let src_data_s = relative(src_root, &src_data);
        if let (Some(s), Some(d)) = (src_root.local_path(), dst_root.local_path()) {
            let (s_dev, d_dev) = match (device_of(s).await, device_of(d).await) {
                (Ok(s), Ok(d)) => (s.dev, d.dev),
                (Err(reason), _) | (_, Err(reason)) => return Taken::Declined(reason.into()),
            };
            if s_dev != d_dev {
                return Taken::NotApplicable(format!(
                    "source root `{}` and destination root `{}` are on different filesystems; \
                     a hardlink cannot cross them",
                    src_root.url(),
                    dst_root.url()
                ));
            }
        }
        match size_of(src_store, &src_data).await {
            Ok(Some(size)) if size == descriptor.size() => {}
            Ok(Some(size)) => {
                return Taken::Declined(Refusal::damaged(format!(
                    "source data `{src_data_s}` in `{}` has {size} bytes but the descriptor says \
                     {}; not linked",
                    src_root.url(),
                    descriptor.size()
                )));
            }
            Ok(None) => {
                return Taken::NotApplicable(format!(
                    "the source data `{src_data_s}` is missing from `{}` (is it the registry's \
                     root directory?)",
                    src_root.url()
                ));
            }
            Err(e) => {
                return Taken::Declined(self.failed(
                    &format!("looking up `{src_data_s}`"),
                    src_root,
                    &e,
                ));
            }
        }
        let method = match dst_root.backend() {
            Backend::Filesystem { .. } => MountMethod::Hardlink,
            Backend::S3 { .. } => MountMethod::ServerSideCopy,
            _ => MountMethod::other("store copy"),
        };
        if plan_only {
            // A plan reads no blob data and writes nothing: the mount hashes and copies.
            return Taken::Data(method);
        }
        if !src_root.is_trusted()
            && let Some(reason) = self.verify(src_root, &src_data, descriptor).await
        {
            return Taken::Declined(reason);
        }
        // The destination's store copies: a hardlink (to a staging name, then renamed)
        // between filesystem roots, `CopyObject` within one bucket.
        if let Err(reason) = make_parent(dst_root, dst_data).await {
            return Taken::Declined(reason.into());
        }
        if let Err(e) = dst_root.store().copy(&src_data, dst_data).await {
            return Taken::Declined(self.failed(
                &format!(
                    "copying `{src_data_s}` of `{}` to `{}`",
                    src_root.url(),
                    relative(dst_root, dst_data)
                ),
                dst_root,
                &e,
            ));
        }
        Taken::Data(method)
    }

    /// Hashes the object at `path` and compares it with `descriptor`; `Some(reason)` when it
    /// does not match or cannot be read.
    async fn verify(
        &self,
        root: &StorageRoot,
        path: &Path,
        descriptor: &Descriptor,
    ) -> Option<Refusal> {
        let shown = relative(root, path);
        let mut hasher = match Hasher::for_digest(descriptor.digest()) {
            Ok(h) => h,
            Err(e) => return Some(e.to_string().into()),
        };
        let mut stream = match root.store().get(path).await {
            Ok(r) => r.into_stream(),
            Err(e) => return Some(self.failed(&format!("reading `{shown}`"), root, &e)),
        };
        let mut seen = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    seen += chunk.len() as u64;
                    if seen > descriptor.size() {
                        break;
                    }
                    hasher.update(&chunk);
                }
                Err(e) => return Some(self.failed(&format!("reading `{shown}`"), root, &e)),
            }
        }
        if seen != descriptor.size() {
            return Some(Refusal::damaged(format!(
                "source data `{shown}` in `{}` has {seen}{} bytes but the descriptor says {}; \
                 not linked",
                root.url(),
                if seen > descriptor.size() { "+" } else { "" },
                descriptor.size()
            )));
        }
        let actual = hasher.finish();
        if &actual != descriptor.digest() {
            return Some(Refusal::damaged(format!(
                "source data `{shown}` in `{}` hashes to `{actual}`, not `{}`: the storage is \
                 corrupt; not linked",
                root.url(),
                descriptor.digest()
            )));
        }
        None
    }
}

/// A repository the blob may be taken from, on a registry with a storage root.
struct Source<'a> {
    authority: &'a str,
    namespace: &'a str,
    root: &'a StorageRoot,
    /// Whether it is the copy's source (rather than a place the blob-location cache named).
    is_source: bool,
}

impl Source<'_> {
    /// The repository, as a mount reports where a blob came from.
    fn place(&self) -> StoreInfo {
        StoreInfo::new(StoreInfo::REGISTRY, self.authority, self.namespace)
    }
}

/// What trying one source gave.
enum Taken {
    /// The data is under the destination root now, by this method.
    Data(MountMethod),
    /// This source cannot give the blob.
    NotApplicable(String),
    /// This source should have given it but could not.
    Declined(Refusal),
}

/// Why a source, or the destination, did not give the blob.
struct Refusal {
    reason: String,
    /// The storage could not be reached at all.
    unreachable: bool,
    /// The source's data has the wrong size or content.
    damaged: bool,
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Self {
            reason,
            unreachable: false,
            damaged: false,
        }
    }
}

impl Refusal {
    /// The source's data is corrupt, for `reason`.
    fn damaged(reason: String) -> Self {
        Self {
            reason,
            unreachable: false,
            damaged: true,
        }
    }
}

impl Refusal {
    fn outcome(self) -> MountOutcome {
        if self.unreachable {
            MountOutcome::unreachable(self.reason)
        } else {
            MountOutcome::declined(self.reason)
        }
    }
}

/// Lowercases the host part, as registries are named case-insensitively.
fn normalize(authority: &str) -> String {
    authority.trim().to_ascii_lowercase()
}

impl fmt::Display for DistributionStorageMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DistributionStorageMount[")?;
        for (i, (authority, _)) in self.registries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(authority)?;
        }
        f.write_str("]")
    }
}

/// What a destination repository holds of a blob, as [`DistributionStorageMount`] finds it.
struct AtDestination {
    /// The repository's link file for the blob, if any.
    link: Option<Vec<u8>>,
    /// The size of the blob's data file, if any.
    data_size: Option<u64>,
}

/// `path` relative to `root`, for messages that also name the root.
fn relative(root: &StorageRoot, path: &Path) -> String {
    let full = path.as_ref();
    full.strip_prefix(root.prefix().as_ref())
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(full)
        .to_string()
}

/// Reads a small object (a link file), `None` when it does not exist.
async fn read_small(
    store: &dyn ObjectStore,
    path: &Path,
) -> std::result::Result<Option<Vec<u8>>, object_store::Error> {
    match store.get(path).await {
        Ok(result) => {
            if result.meta.size > 1024 {
                // Not a link file; treat its content as not matching.
                return Ok(Some(Vec::new()));
            }
            Ok(Some(result.bytes().await?.to_vec()))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The size of an object, `None` when it does not exist.
async fn size_of(
    store: &dyn ObjectStore,
    path: &Path,
) -> std::result::Result<Option<u64>, object_store::Error> {
    match store.head(path).await {
        Ok(meta) => Ok(Some(meta.size)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a link file's content names `descriptor`'s digest.
fn links_to(content: &[u8], descriptor: &Descriptor) -> bool {
    std::str::from_utf8(content).is_ok_and(|s| s.trim() == descriptor.digest().to_string())
}

/// What a filesystem root is on: the device id of its filesystem, and whether the root
/// exists yet.
struct RootDevice {
    dev: u64,
    exists: bool,
}

/// The device of a filesystem root, or why it cannot be had.
///
/// A root that does not exist yet, in a directory that does, is the storage of a registry
/// that has never stored anything (distribution creates its root on its first write): it is
/// on its parent's filesystem and is created by the first write ([`make_parent`]). A root
/// whose parent is missing too (an unmounted volume, a wrong path) cannot be reached.
async fn device_of(dir: &std::path::Path) -> std::result::Result<RootDevice, String> {
    use std::os::unix::fs::MetadataExt;
    let unreachable = |e: std::io::Error| {
        format!(
            "storage root `{}` cannot be reached ({e}); is the storage mounted and the root right?",
            dir.display()
        )
    };
    match tokio::fs::metadata(dir).await {
        Ok(m) if m.is_dir() => Ok(RootDevice {
            dev: m.dev(),
            exists: true,
        }),
        Ok(_) => Err(format!(
            "storage root `{}` is not a directory",
            dir.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(parent) => match tokio::fs::metadata(parent).await {
                    Ok(m) if m.is_dir() => Ok(RootDevice {
                        dev: m.dev(),
                        exists: false,
                    }),
                    _ => Err(unreachable(e)),
                },
                None => Err(unreachable(e)),
            }
        }
        Err(e) => Err(unreachable(e)),
    }
}

/// Creates the directory that will hold `path` under the filesystem root `root`, as
/// distribution's filesystem driver does before each write (`os.MkdirAll(dir, 0777)`, less
/// the umask), so the registry can go on writing beside what this strategy wrote. The root
/// itself is created only inside a directory that exists: a root whose parent is missing is
/// an unmounted volume or a wrong path, never created. Nothing to do for other backends.
async fn make_parent(root: &StorageRoot, path: &Path) -> std::result::Result<(), String> {
    let Some(root_dir) = root.local_path() else {
        return Ok(());
    };
    let relative = relative(root, path);
    let Some(parent) = std::path::Path::new(&relative).parent() else {
        return Ok(());
    };
    let (root_dir, dir) = (root_dir.to_path_buf(), root_dir.join(parent));
    let made = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(&root_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "storage root `{}` cannot be created ({e}); is the storage mounted and the \
                     root right?",
                    root_dir.display()
                ));
            }
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(|e| format!("creating `{}` failed: {e}", dir.display()))
    })
    .await;
    made.unwrap_or_else(|e| Err(format!("creating directories failed: {e}")))
}

/// The mode distribution's filesystem driver creates directories with (less the umask).
const DIR_MODE: u32 = 0o777;

#[async_trait]
impl MountStrategy for DistributionStorageMount {
    fn name(&self) -> &str {
        NAME
    }

    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        self.sources_for(request).is_ok()
    }

    /// Reads only (stats, `HEAD`s and link reads in the storage): the destination
    /// repository's link and data, then each source's link, data size and whether the roots
    /// can copy between them. The source data is hashed, and the registry asked whether it
    /// serves the link, only by the mount itself.
    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        let (dst_root, sources) = match self.sources_for(request) {
            Ok(found) => found,
            Err(reason) => return Ok(MountPlan::not_applicable(reason)),
        };
        let descriptor = request.descriptor;
        let digest = descriptor.digest();
        let dst = request.destination.info();
        if let Some(path) = dst_root.local_path()
            && let Err(reason) = device_of(path).await
        {
            return Ok(MountPlan::not_applicable(reason));
        }
        let dst_data = blob_data(dst_root.prefix(), digest);
        let dst_link = layer_link(dst_root.prefix(), &dst.namespace, digest);
        let AtDestination { link, data_size } =
            match self.at_destination(dst_root, &dst_data, &dst_link).await {
                Ok(found) => found,
                Err(refusal) => return Ok(MountPlan::would_try(refusal.reason)),
            };
        let linked = link.as_deref().is_some_and(|l| links_to(l, descriptor));
        if linked && data_size == Some(descriptor.size()) {
            return Ok(MountPlan::AlreadyPresent);
        }
        if let Some(size) = data_size
            && size != descriptor.size()
        {
            return Ok(MountPlan::not_applicable(format!(
                "destination data `{}` in `{}` has {size} bytes but the descriptor says {}",
                relative(dst_root, &dst_data),
                dst_root.url(),
                descriptor.size()
            )));
        }
        let mut reasons = Vec::new();
        for source in &sources {
            match self
                .take_from(
                    source,
                    dst_root,
                    &dst_data,
                    data_size.is_some(),
                    descriptor,
                    true,
                )
                .await
            {
                Taken::Data(method) => {
                    return Ok(MountPlan::would_mount(source.place(), method));
                }
                Taken::NotApplicable(reason) => reasons.push(reason),
                Taken::Declined(refusal) => reasons.push(refusal.reason),
            }
        }
        Ok(MountPlan::not_applicable(reasons.join("; ")))
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let (dst_root, sources) = match self.sources_for(request) {
            Ok(plan) => plan,
            Err(reason) => return Ok(MountOutcome::not_applicable(reason)),
        };
        let descriptor = request.descriptor;
        let digest = descriptor.digest();
        let dst = request.destination.info();
        tracing::debug!(
            strategy = NAME,
            %digest,
            source = %request.source,
            destination = %request.destination,
            destination_root = dst_root.url(),
            sources = sources.len(),
            "distribution storage mount attempt"
        );
        let dst_store = dst_root.store().as_ref();
        let dst_data = blob_data(dst_root.prefix(), digest);
        let dst_link = layer_link(dst_root.prefix(), &dst.namespace, digest);
        let (dst_data_s, dst_link_s) =
            (relative(dst_root, &dst_data), relative(dst_root, &dst_link));

        // A filesystem root that is not there, in a directory that is, belongs to a registry
        // that has never stored anything: an empty storage, created by the writes below. One
        // whose parent is not there either (an unmounted volume, a wrong path) must not be.
        let mut fresh_root = false;
        if let Some(path) = dst_root.local_path() {
            match device_of(path).await {
                Ok(root) => fresh_root = !root.exists,
                Err(reason) => return Ok(MountOutcome::declined(reason)),
            }
        }

        // 1. The destination repository may link the blob already.
        let AtDestination { link, data_size } =
            match self.at_destination(dst_root, &dst_data, &dst_link).await {
                Ok(found) => found,
                Err(refusal) => return Ok(refusal.outcome()),
            };
        let linked = link.as_deref().is_some_and(|l| links_to(l, descriptor));
        if linked && data_size == Some(descriptor.size()) {
            return Ok(MountOutcome::AlreadyPresent);
        }
        if let Some(size) = data_size
            && size != descriptor.size()
        {
            return Ok(MountOutcome::declined(format!(
                "destination data `{dst_data_s}` in `{}` has {size} bytes but the descriptor says {}; \
                 leaving it to the registry",
                dst_root.url(),
                descriptor.size()
            )));
        }

        // 2. and 3. Take the data from the first source that has it.
        let several = sources.len() > 1;
        let mut refusals: Vec<String> = Vec::new();
        let mut declined = false;
        let mut unreachable = false;
        let mut taken = None;
        let mut corrupt = Vec::new();
        for source in &sources {
            let (reason, is_declined) = match self
                .take_from(
                    source,
                    dst_root,
                    &dst_data,
                    data_size.is_some(),
                    descriptor,
                    false,
                )
                .await
            {
                Taken::Data(method) => {
                    taken = Some((source, method));
                    break;
                }
                Taken::NotApplicable(reason) => (reason, false),
                Taken::Declined(refusal) => {
                    unreachable |= refusal.unreachable;
                    if refusal.damaged {
                        corrupt.push(CorruptLocation::new(
                            source.place(),
                            source.is_source,
                            refusal.reason.clone(),
                        ));
                    }
                    (refusal.reason, true)
                }
            };
            declined |= is_declined;
            refusals.push(if several {
                format!("from `{}/{}`: {reason}", source.authority, source.namespace)
            } else {
                reason
            });
        }
        let Some((source, method)) = taken else {
            let reason = refusals.join("; ");
            return Ok(if unreachable {
                MountOutcome::unreachable(reason)
            } else if declined {
                MountOutcome::declined(reason)
            } else {
                MountOutcome::not_applicable(reason)
            });
        };

        // 4. Link the blob into the destination repository, data first, link last.
        if let Err(reason) = make_parent(dst_root, &dst_link).await {
            return Ok(MountOutcome::declined(reason));
        }
        let content = PutPayload::from(link_content(digest).into_bytes());
        if let Err(e) = dst_store.put(&dst_link, content).await {
            return Ok(self
                .failed(&format!("writing the link `{dst_link_s}`"), dst_root, &e)
                .outcome());
        }

        // 5. The registry must now serve the blob; if it does not (the root is not the one it
        //    uses, a cache hides the link), take the link back and let the copy stream.
        match request.destination.exists(descriptor).await {
            Ok(true) => {
                tracing::debug!(strategy = NAME, %digest, %method, "blob linked at the storage layer");
                Ok(MountOutcome::mounted(source.place(), method).with_corrupt(corrupt))
            }
            answer => {
                let why = match answer {
                    Err(e) => format!("checking it failed: {e}"),
                    _ => "it answers that the blob is unknown".to_string(),
                };
                if link.is_none()
                    && let Err(e) = dst_store.delete(&dst_link).await
                {
                    tracing::warn!(path = %dst_link, error = %ferry_core::redact::text(&e.to_string()), "could not remove a link the registry ignores");
                }
                let created = if fresh_root {
                    format!(
                        " (`{}` did not exist and was created for this blob: remove it if it is \
                         not the registry's)",
                        dst_root.url()
                    )
                } else {
                    String::new()
                };
                Ok(MountOutcome::declined(format!(
                    "linked `{digest}` into `{}` of `{}`, but the registry `{}` does not serve it: \
                     {why}; check that `{}` is the registry's storage root (the directory or \
                     prefix holding `{}`) and that no blob descriptor cache hides new links{created}",
                    dst.namespace,
                    dst_root.url(),
                    dst.authority,
                    dst_root.url(),
                    V2.join("/")
                )))
            }
        }
    }
}
