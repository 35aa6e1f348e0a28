//! A repository of a registry as a ferry store: manifests, blobs, tags, referrers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::model::{
    DEFAULT_MANIFEST_LIMIT, MANIFEST_MEDIA_TYPES, OCI_INDEX, OCI_MANIFEST, is_manifest,
    media_type_str,
};
use ferry_core::verify::read_to_bytes;
use ferry_core::{
    ByteStream, Descriptor, Digest, Error, Hasher, Manifest, ReadStore, Result, StoreInfo,
    WriteStore, bytes_stream, verify_stream,
};
use ferry_http::ResponseBody;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use http::{HeaderMap, Method, Response, StatusCode};

use crate::auth::{ScopeSet, Scopes};
use crate::error::{has_error_code, status_error};
use crate::registry::{Registry, Retry};
use crate::transport::{Payload, Req, read_body, read_error_body};
use crate::upload::UploadSession;
use oci_spec::distribution::ErrorCode;

/// Manifests kept in memory per repository (resolved or pushed, for the fetch or tag that
/// follows).
const MANIFEST_CACHE_ENTRIES: usize = 32;

/// One repository of one registry, implementing [`ReadStore`] and [`WriteStore`].
///
/// Repositories of one registry share its [`Registry`]: connections and tokens.
///
/// A blob push commits only content of the descriptor's size and digest: ferry counts the
/// bytes, and the registry hashes them as it must before committing `PUT ?digest=`, refusing a
/// mismatch (`DIGEST_INVALID`, returned as [`ferry_core::Error::DigestMismatch`]). With
/// [`crate::ClientOptions::verify_uploads`] ferry hashes them too and withholds the last chunk
/// of content that does not match. Manifests are always hashed by ferry.
pub struct Repository {
    registry: Arc<Registry>,
    name: String,
    info: StoreInfo,
    display: String,
    manifests: Mutex<VecDeque<(Digest, Bytes)>>,
    /// Whether the registry said, when first asked, that the repository does not exist.
    new: tokio::sync::OnceCell<bool>,
    /// What this handle put, or tried to put, into the repository (pushed, committed or
    /// mounted): a new repository may hold these, and nothing else.
    written: DigestSet,
}

/// What was put into a repository through its handle (shared with its upload sessions).
#[derive(Debug, Clone, Default)]
pub(crate) struct DigestSet(Arc<Mutex<std::collections::HashSet<Digest>>>);

impl DigestSet {
    pub(crate) fn note(&self, digest: &Digest) {
        self.0.lock().expect("written lock").insert(digest.clone());
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.0.lock().expect("written lock").contains(digest)
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("registry", &self.registry.name())
            .field("name", &self.name)
            .finish()
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// The `Accept` header of manifest requests.
pub(crate) fn manifest_accept() -> String {
    MANIFEST_MEDIA_TYPES.join(", ")
}

impl Repository {
    pub(crate) fn new(registry: Arc<Registry>, name: &str) -> Arc<Self> {
        let info = StoreInfo::new(StoreInfo::REGISTRY, registry.name(), name);
        Arc::new(Self {
            display: format!("{}/{}", registry.name(), name),
            registry,
            name: name.to_string(),
            info,
            manifests: Mutex::new(VecDeque::new()),
            new: tokio::sync::OnceCell::new(),
            written: DigestSet::default(),
        })
    }

    /// The record of what was put into the repository through this handle.
    pub(crate) fn written(&self) -> DigestSet {
        self.written.clone()
    }

    /// Whether the repository is known to be new: the registry answered its tag listing
    /// `404 NAME_UNKNOWN` when first asked. A new repository holds no blob, so the copy's
    /// existence check of each blob there would be a wasted request ([`ferry_core::KnownAbsent`]).
    ///
    /// Asked once per handle; any other answer, a refusal included, means "not known to be
    /// new" and existence is checked as usual.
    async fn known_new(&self) -> bool {
        *self
            .new
            .get_or_init(|| async {
                let req = Req::new(Method::GET, self.url("tags/list?n=1"));
                // Pull, and push where the token server grants it: a destination's uploads
                // then find their token in the cache instead of asking for a second one.
                let scopes = Scopes {
                    required: ScopeSet::repository(&self.name, &["pull"]),
                    optional: ScopeSet::repository(&self.name, &["push"]),
                };
                let resp = match self.send(req, &scopes, Retry::Yes).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        tracing::debug!(repository = %self, error = %e, "tag listing failed; checking existence blob by blob");
                        return false;
                    }
                };
                if resp.status() != StatusCode::NOT_FOUND {
                    return false;
                }
                let body = read_error_body(resp).await;
                let new = has_error_code(&body, ErrorCode::NameUnknown);
                tracing::debug!(repository = %self, new, "destination repository probed");
                new
            })
            .await
    }

    /// The repository name (`team/app`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry holding it.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(crate) fn store_name(&self) -> &str {
        &self.display
    }

    pub(crate) fn url(&self, rest: &str) -> url::Url {
        self.registry.url(&format!("v2/{}/{rest}", self.name))
    }

    fn remember(&self, digest: &Digest, bytes: &Bytes) {
        let mut cache = self.manifests.lock().expect("manifest cache lock");
        cache.retain(|(d, _)| d != digest);
        cache.push_front((digest.clone(), bytes.clone()));
        cache.truncate(MANIFEST_CACHE_ENTRIES);
    }

    fn remembered(&self, digest: &Digest) -> Option<Bytes> {
        let cache = self.manifests.lock().expect("manifest cache lock");
        cache
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, b)| b.clone())
    }

    pub(crate) async fn send(
        &self,
        req: Req,
        scopes: &Scopes,
        retry: Retry,
    ) -> Result<Response<ResponseBody>> {
        self.registry.send(req, scopes, retry).await
    }

    /// The error for an unexpected answer to a request sent with [`Retry::Yes`]: a 429 or
    /// 5xx here is what the registry still answered after the transport's retries, so it is
    /// not marked temporary (a caller that retries whole steps does not try again).
    ///
    /// The exception is `MANIFEST_BLOB_UNKNOWN`: the engine pushes a manifest only after every
    /// child was pushed or found, so a registry that does not know one yet is catching up (an
    /// eventually consistent backend, or distribution on a filesystem rewriting a layer link
    /// while another push of the same blob commits), and the step may be tried again.
    async fn fail(&self, what: &str, resp: Response<ResponseBody>) -> Error {
        let status = resp.status();
        let body = read_error_body(resp).await;
        let mut error = status_error(self.store_name(), what, status, &body);
        if let Error::Store { temporary, .. } = &mut error {
            *temporary = status == StatusCode::BAD_REQUEST
                && has_error_code(&body, ErrorCode::ManifestBlobUnknown);
        }
        error
    }

    /// The tags of the repository, every page of the listing. An error means the listing is
    /// incomplete.
    pub async fn tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut url = self.url(&format!("tags/list?n={}", crate::listing::PAGE_SIZE));
        for _ in 0..crate::listing::MAX_PAGES {
            let page = crate::listing::page(
                &self.registry,
                url,
                &Scopes::pull(&self.name),
                self.store_name(),
                "list tags",
            )
            .await?;
            let list: TagList = serde_json::from_slice(&page.body).map_err(|e| {
                Error::store(self.store_name(), format!("tag list is not JSON: {e}"))
            })?;
            out.extend(list.tags.unwrap_or_default());
            match page.next {
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
        Err(crate::listing::too_many_pages(
            self.store_name(),
            "list tags",
        ))
    }

    /// `GET` of manifest `reference`, verified: by digest it must hash to that digest, by
    /// tag to the registry's `Docker-Content-Digest` when given. Returns its descriptor and
    /// bytes.
    pub(crate) async fn get_manifest(&self, reference: &str) -> Result<(Descriptor, Bytes)> {
        let policy = self.registry.transport.retry;
        let what = format!("GET manifest `{reference}`");
        crate::transport::retrying_broken(&policy, &what, || self.get_manifest_once(reference))
            .await
    }

    /// One try of [`Repository::get_manifest`].
    async fn get_manifest_once(&self, reference: &str) -> Result<(Descriptor, Bytes)> {
        let what = format!("manifest `{reference}`");
        let req = Req::new(Method::GET, self.url(&format!("manifests/{reference}")))
            .header(ACCEPT, &manifest_accept());
        let resp = self
            .send(req, &Scopes::pull(&self.name), Retry::Yes)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.fail(&format!("GET {what}"), resp).await);
        }
        let headers = resp.headers().clone();
        let limit = DEFAULT_MANIFEST_LIMIT;
        if let Some(len) = content_length(&headers)
            && len > limit
        {
            return Err(Error::TooLarge {
                what,
                size: len,
                limit,
            });
        }
        let bytes = read_body(resp, limit as usize).await?;
        let header_digest = header_digest(&headers);
        let expected = match reference.parse::<Digest>() {
            Ok(d) if reference.contains(':') => Some(d),
            _ => None,
        };
        let digest = match &expected {
            Some(d) => {
                let mut h = Hasher::for_digest(d)?;
                h.update(&bytes);
                let actual = h.finish();
                if &actual != d {
                    return Err(Error::DigestMismatch {
                        expected: d.clone(),
                        actual: Some(actual),
                    });
                }
                actual
            }
            None => ferry_core::sha256(&bytes),
        };
        if let Some(hd) = &header_digest
            && hd.algorithm() == digest.algorithm()
            && hd != &digest
        {
            // The bytes or the header were altered on the way (or the tag moved between
            // the registry's hashing and its answer): asking again may pass.
            return Err(Error::Store {
                store: self.store_name().to_string(),
                message: format!(
                    "GET {what}: the registry answered `Docker-Content-Digest: {hd}` but the \
                     {} bytes received hash to `{digest}`; nothing was copied",
                    bytes.len()
                ),
                temporary: true,
                source: None,
            });
        }
        let media_type = manifest_media_type(&headers, &bytes);
        let desc = Descriptor::new(
            media_type.as_str().into(),
            bytes.len() as u64,
            digest.clone(),
        );
        self.remember(&digest, &bytes);
        Ok((desc, bytes))
    }

    pub(crate) async fn head_manifest(&self, reference: &str) -> Result<Option<Descriptor>> {
        let req = Req::new(Method::HEAD, self.url(&format!("manifests/{reference}")))
            .header(ACCEPT, &manifest_accept());
        let resp = self
            .send(req, &Scopes::pull(&self.name), Retry::Yes)
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound {
                    what: format!("manifest `{reference}` in `{}`", self.display),
                    hint: None,
                });
            }
            _ => {
                return Err(self
                    .fail(&format!("HEAD manifest `{reference}`"), resp)
                    .await);
            }
        }
        let h = resp.headers();
        let media = h
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .filter(|m| is_manifest(m));
        match (header_digest(h), media, content_length(h)) {
            (Some(d), Some(m), Some(len)) => Ok(Some(Descriptor::new(m.as_str().into(), len, d))),
            _ => Ok(None),
        }
    }

    /// `PUT` of manifest bytes under `reference` (a digest or a tag); returns the answer's
    /// headers after checking the registry's `Docker-Content-Digest`.
    pub(crate) async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<HeaderMap> {
        let computed = ferry_core::sha256(&bytes);
        let req = Req::new(Method::PUT, self.url(&format!("manifests/{reference}")))
            .header(CONTENT_TYPE, media_type)
            .body(Payload::Bytes(bytes));
        let resp = self
            .send(req, &Scopes::push(&self.name), Retry::Yes)
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(&format!("PUT manifest `{reference}`"), resp)
                .await);
        }
        let headers = resp.headers().clone();
        if let Some(d) = header_digest(&headers)
            && d.algorithm() == computed.algorithm()
            && d != computed
        {
            // Bytes altered on the way, or an answer mislabelled by a proxy: sending again
            // may pass.
            return Err(Error::Store {
                store: self.store_name().to_string(),
                message: format!(
                    "PUT manifest `{reference}`: the registry answered that it stored `{d}` but the bytes sent hash to `{computed}`"
                ),
                temporary: true,
                source: None,
            });
        }
        Ok(headers)
    }

    /// Starts an upload session (`POST /v2/<name>/blobs/uploads/`).
    pub(crate) async fn start_upload(&self) -> Result<UploadSession> {
        let url = self.url("blobs/uploads/");
        let (resp, opened) = self
            .registry
            .post_opening(url, &self.name, Scopes::push(&self.name))
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail("start blob upload", resp).await);
        }
        UploadSession::opened(self, resp.headers(), opened)
    }

    async fn blob_exists(&self, desc: &Descriptor) -> Result<bool> {
        let req = Req::new(Method::HEAD, self.url(&format!("blobs/{}", desc.digest())));
        let resp = self
            .send(req, &Scopes::pull(&self.name), Retry::Yes)
            .await?;
        match resp.status() {
            s if s.is_success() || s.is_redirection() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .fail(&format!("HEAD blob `{}`", desc.digest()), resp)
                .await),
        }
    }

    async fn manifest_exists(&self, desc: &Descriptor) -> Result<bool> {
        if self.remembered(desc.digest()).is_some() {
            return Ok(true);
        }
        let req = Req::new(
            Method::HEAD,
            self.url(&format!("manifests/{}", desc.digest())),
        )
        .header(ACCEPT, &manifest_accept());
        let resp = self
            .send(req, &Scopes::pull(&self.name), Retry::Yes)
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .fail(&format!("HEAD manifest `{}`", desc.digest()), resp)
                .await),
        }
    }

    /// Verifies and `PUT`s manifest `desc` under `reference` (its digest, or a tag: a
    /// registry stores a manifest put by tag under its digest too).
    async fn push_manifest(
        &self,
        desc: &Descriptor,
        data: ByteStream,
        reference: &str,
    ) -> Result<()> {
        let what = format!("manifest `{}`", desc.digest());
        let bytes =
            read_to_bytes(verify_stream(desc, data)?, &what, DEFAULT_MANIFEST_LIMIT).await?;
        let media_type = media_type_str(desc);
        // Once sent the registry may hold it, whatever the answer says.
        self.written.note(desc.digest());
        let headers = self
            .put_manifest(reference, &media_type, bytes.clone())
            .await?;
        self.remember(desc.digest(), &bytes);
        if !headers.contains_key("oci-subject")
            && let Ok(m) = Manifest::parse(desc, bytes)
            && let Some(subject) = &m.subject
        {
            // The registry has no referrers API: keep the tag-schema index up to date.
            crate::referrers::add_to_fallback_index(self, subject, &m).await?;
        }
        Ok(())
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

pub(crate) fn header_digest(h: &HeaderMap) -> Option<Digest> {
    h.get("docker-content-digest")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(h: &HeaderMap) -> Option<String> {
    for v in h.get_all(LINK) {
        let v = v.to_str().ok()?;
        for part in v.split(',') {
            let (target, params) = part.split_once(';').unwrap_or((part, ""));
            let target = target.trim();
            if params.contains("rel=\"next\"") || params.contains("rel=next") {
                let t = target.trim_start_matches('<').trim_end_matches('>');
                return Some(t.to_string());
            }
        }
    }
    None
}

/// The media type of a fetched manifest: the `Content-Type` when it names a manifest, else
/// the document's own `mediaType`, else guessed from its shape.
fn manifest_media_type(h: &HeaderMap, bytes: &[u8]) -> String {
    if let Some(ct) = h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let ct = ct.split(';').next().unwrap_or(ct).trim();
        if is_manifest(ct) {
            return ct.to_string();
        }
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => OCI_INDEX.into(),
        _ => OCI_MANIFEST.into(),
    }
}

#[async_trait]
impl ReadStore for Repository {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        if is_manifest(&media_type_str(descriptor)) {
            self.manifest_exists(descriptor).await
        } else {
            self.blob_exists(descriptor).await
        }
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let digest = descriptor.digest();
        if is_manifest(&media_type_str(descriptor)) {
            if let Some(b) = self.remembered(digest) {
                return Ok(bytes_stream(b));
            }
            let (_, bytes) = self.get_manifest(digest.as_ref()).await?;
            return Ok(bytes_stream(bytes));
        }
        crate::download::Download {
            registry: self.registry.clone(),
            url: self.url(&format!("blobs/{digest}")),
            scopes: Scopes::pull(&self.name),
            store: self.store_name().to_string(),
            what: format!("blob `{digest}`"),
            size: descriptor.size(),
        }
        .stream()
        .await
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let is_digest = reference.contains(':');
        if is_digest {
            reference.parse::<Digest>().map_err(|e| {
                Error::invalid(
                    "digest",
                    reference,
                    format!("expected `sha256:<64 hex digits>` ({e})"),
                )
            })?;
        } else {
            crate::reference::validate_tag(reference)?;
        }
        if self.registry.settings.resolve_with_head
            && let Some(d) = self.head_manifest(reference).await?
        {
            return Ok(d);
        }
        let (desc, _) = self.get_manifest(reference).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: format!("`{reference}` in `{}`", self.display),
                hint: Some("check the repository name and the tag or digest".into()),
            },
            other => other,
        })?;
        Ok(desc)
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        crate::referrers::list(self, subject).await
    }

    fn capabilities(&self) -> ferry_core::Capabilities<'_> {
        ferry_core::Capabilities::default()
            .with_list_tags(self)
            .with_delete_tag(self)
            .with_delete_manifest(self)
            .with_peek(self)
            .with_registry_repository(self)
            .with_known_absent(self)
    }
}

#[async_trait]
impl ferry_core::KnownAbsent for Repository {
    /// Whether the repository is known to be new and nothing was written, or tried, into it
    /// under `descriptor`'s digest through this handle (everything else is asked of the
    /// registry).
    async fn known_absent(&self, descriptor: &Descriptor) -> bool {
        self.known_new().await && !self.written.contains(descriptor.digest())
    }
}

#[async_trait]
impl ferry_core::Peek for Repository {
    /// A `HEAD` of the manifest (a `GET` when the answer lacks its digest, type or size).
    async fn peek(&self, reference: &str) -> Result<Descriptor> {
        if reference.contains(':') {
            return self.resolve(reference).await;
        }
        crate::reference::validate_tag(reference)?;
        match self.head_manifest(reference).await? {
            Some(d) => Ok(d),
            None => Ok(self.get_manifest(reference).await?.0),
        }
    }
}

#[async_trait]
impl ferry_core::RegistryRepository for Repository {
    fn registry(&self) -> &str {
        self.registry.name()
    }

    fn repository(&self) -> &str {
        &self.name
    }

    async fn mount_blob(
        &self,
        digest: &Digest,
        from: Option<&str>,
        mountable: &[String],
    ) -> Result<ferry_core::BlobMount> {
        let scopes = Scopes::push(&self.name).with_pull_from(mountable.iter().map(String::as_str));
        crate::mount::mount_blob(self, digest, from, &scopes).await
    }
}

#[async_trait]
impl ferry_core::ListTags for Repository {
    async fn list_tags(&self) -> Result<Vec<String>> {
        self.tags().await
    }
}

#[async_trait]
impl WriteStore for Repository {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        if is_manifest(&media_type_str(descriptor)) {
            return self
                .push_manifest(descriptor, data, descriptor.digest().as_ref())
                .await;
        }
        if self.new.get() == Some(&true) {
            // The engine asked nothing before pushing into a repository its tag listing showed
            // to be new. But a repository holding blobs and no tag yet (a copy stopped before
            // its manifest) answers the listing the same way: so the upload starts as a mount
            // from the repository itself, which answers `201` when it holds the blob already
            // (nothing is sent) and otherwise opens the session, in the same one request.
            let scopes = Scopes::push(&self.name);
            let from = Some(self.name.as_str());
            match crate::mount::mount_blob(self, descriptor.digest(), from, &scopes).await? {
                ferry_core::BlobMount::Mounted => {
                    tracing::debug!(repository = %self, digest = %descriptor.digest(), "the new repository holds the blob already");
                    return Ok(());
                }
                ferry_core::BlobMount::Upload(session) => {
                    return session.upload(descriptor, data).await;
                }
                // A registry that refuses such a mount: a plain upload.
                _ => {}
            }
        }
        let session = self.start_upload().await?;
        session.upload(descriptor, data).await
    }

    async fn push_tagged(
        &self,
        descriptor: &Descriptor,
        data: ByteStream,
        tag: &str,
    ) -> Result<()> {
        crate::reference::validate_tag(tag)?;
        // A registry digests what it is given by tag with sha256; other digests go by digest.
        if *descriptor.digest().algorithm() != ferry_core::model::DigestAlgorithm::Sha256 {
            self.push(descriptor, data).await?;
            return self.tag(descriptor, tag).await;
        }
        self.push_manifest(descriptor, data, tag).await
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        crate::reference::validate_tag(tag)?;
        let bytes = match self.remembered(descriptor.digest()) {
            Some(b) => b,
            None => self.get_manifest(descriptor.digest().as_ref()).await?.1,
        };
        self.put_manifest(tag, &media_type_str(descriptor), bytes)
            .await?;
        Ok(())
    }
}
