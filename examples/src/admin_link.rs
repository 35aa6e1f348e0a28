//! [`AdminLinkMount`]: a vendor-specific mount strategy that asks a registry's admin endpoint
//! to link a blob into the destination repository.
//!
//! This module is written the way a registry operator would write a mounter in their own
//! crate: it uses only `ferry-core`'s public API (plus an HTTP client and serde), never a
//! store's concrete type, so it works with any store whose [`StoreInfo`] says "registry".
//!
//! The admin API it speaks is a small, made-up vendor API that stands for whatever a
//! registry product offers to link content between repositories on its own storage:
//!
//! ```text
//! POST {admin_url}/admin/link
//! Authorization: Bearer <token>            (when a token is configured)
//! Content-Type: application/json
//!
//! {"digest": "sha256:…", "size": 1234,
//!  "source": {"registry": "reg-a.example:5000", "repository": "team/app"},
//!  "target": {"registry": "reg-b.example:5000", "repository": "mirror/app"}}
//! ```
//!
//! | answer | meaning                                                              | outcome          |
//! |--------|----------------------------------------------------------------------|------------------|
//! | 201    | the target repository now links the blob                              | `Mounted`        |
//! | 409    | the target repository already links the blob                          | `AlreadyPresent` |
//! | 404    | the source repository does not hold the blob (or is not on the same storage) | next source, then `Declined` |
//! | other  | refused (401, 403, 422 for a size that does not match, 5xx)           | next source, then `Declined` |
//! | no answer | connection refused                                               | `Declined` as unreachable |
//!
//! Timeouts and leaving a silent endpoint alone are not written here: they are layers of
//! `ferry-core` ([`ferry_core::layer`]) the operator stacks around the strategy, as
//! [`AdminLinkMount::layered`] does.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::layer::{MountStrategyExt, Resting, Timeout};
use ferry_core::{
    Error, MountMethod, MountOutcome, MountRequest, MountStrategy, Result, StoreInfo,
};
use ferry_http::{Body, HttpClient, HttpClientBuilder, TlsPolicy};
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;

/// How long connecting to the admin endpoint, and one attempt of [`AdminLinkMount::layered`],
/// may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`AdminLinkMount::layered`] leaves an admin endpoint alone after it did not
/// answer, so a copy of many blobs does not wait for a dead endpoint once per blob.
pub const REST_AFTER_NO_ANSWER: Duration = Duration::from_secs(30);

/// The most bytes of an error answer kept for the reason shown to the user.
const MAX_REASON_BYTES: usize = 512;

/// A mount strategy that asks a registry's admin endpoint to link a blob from a repository
/// that holds it into the destination repository, on the storage the registries share.
///
/// It applies when the destination's [`StoreInfo::scheme`] is `registry` and its authority
/// is one the admin endpoint manages (see [`AdminLinkMount::managing`]). The repositories it
/// asks to link from are, in order and without duplicates: the copy's source, then every
/// place the blob-location cache saw the blob ([`MountRequest::candidates`]), keeping only
/// repositories on managed registries. "Could not link" is always an outcome, never an `Err`.
///
/// ```no_run
/// # fn demo() -> ferry_core::Result<()> {
/// use ferry_core::MountChain;
/// use ferry_examples::admin_link::AdminLinkMount;
///
/// let admin = AdminLinkMount::new("http://registry-admin.internal:9000")?
///     .managing(["reg-a.internal:5000", "reg-b.internal:5000"])
///     .with_token(std::env::var("REGISTRY_ADMIN_TOKEN").unwrap_or_default())?
///     .layered();
/// assert_eq!(
///     admin.to_string(),
///     "Resting(30s, Timeout(30s, AdminLinkMount(http://registry-admin.internal:9000)))"
/// );
/// let chain = MountChain::new().with(admin);
/// # let _ = chain; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AdminLinkMount {
    /// The admin URL as given, without a trailing `/`, for `Display` and reasons.
    admin_url: String,
    /// `{admin_url}/admin/link`.
    link_uri: Uri,
    registries: Vec<String>,
    token: Option<HeaderValue>,
    client: HttpClient,
}

/// The body of `POST /admin/link`.
#[derive(Debug, Serialize)]
struct LinkBody<'a> {
    digest: String,
    size: u64,
    source: Repo<'a>,
    target: Repo<'a>,
}

/// A repository of a registry, as the admin API names it.
#[derive(Debug, Serialize)]
struct Repo<'a> {
    registry: &'a str,
    repository: &'a str,
}

/// What the admin endpoint said to one link request.
enum Answer {
    /// 201: linked.
    Linked,
    /// 409: the target already links the blob.
    Present,
    /// Any other answer: not linked from this source.
    Refused(String),
    /// No answer at all (a refused connection).
    Silent(String),
}

impl AdminLinkMount {
    /// The strategy for the admin endpoint at `admin_url` (`http://HOST[:PORT][/PATH]` or
    /// `https://…`). It manages every registry until [`AdminLinkMount::managing`] names some.
    ///
    /// Fails with [`Error::InvalidInput`] when the URL cannot be used.
    pub fn new(admin_url: &str) -> Result<Self> {
        // `Error::invalid` quotes the URL as `ferry_core::redact::url` shows it: a password
        // given in it is never repeated.
        let invalid = |reason: &str| Error::invalid("admin URL", admin_url, reason);
        let parsed = url::Url::parse(admin_url)
            .map_err(|e| invalid(&format!("{e}; write it as `http://HOST[:PORT]`")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("use an `http://` or `https://` URL"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "do not put credentials in the URL; pass a token with `with_token`",
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("remove the query or fragment"));
        }
        let base = parsed.as_str().trim_end_matches('/').to_string();
        let link_uri: Uri = format!("{base}/admin/link")
            .parse()
            .map_err(|e| invalid(&format!("{e}")))?;

        // ferry's HTTP client and TLS root policy (the system's roots), HTTP/1.1 only: one
        // small request per blob needs no multiplexing.
        let client = HttpClientBuilder::new()
            .tls(TlsPolicy::new())
            .http2(false)
            .connect_timeout(Some(DEFAULT_TIMEOUT))
            .build()
            .map_err(|e| Error::store("AdminLinkMount", format!("TLS setup failed: {e}")))?;

        Ok(Self {
            admin_url: base,
            link_uri,
            registries: Vec::new(),
            token: None,
            client,
        })
    }

    /// Limits the strategy to these registries (`host:port`, as in
    /// [`StoreInfo::authority`]): the ones whose storage the admin endpoint manages.
    pub fn managing<I, S>(mut self, registries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.registries
            .extend(registries.into_iter().map(Into::into));
        self
    }

    /// Sends `token` as `Authorization: Bearer <token>` with every admin request. An empty
    /// token sends none. The token never appears in `Display`, `Debug`, errors or logs.
    ///
    /// Fails with [`Error::InvalidInput`] when the token holds characters a header cannot
    /// carry (control characters, non-ASCII).
    pub fn with_token(mut self, token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if token.is_empty() {
            self.token = None;
            return Ok(self);
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::invalid(
                "admin token",
                "(not shown)",
                "it holds characters an HTTP header cannot carry; use visible ASCII",
            )
        })?;
        value.set_sensitive(true);
        self.token = Some(value);
        Ok(self)
    }

    /// The strategy as an operator registers it: attempts limited to [`DEFAULT_TIMEOUT`], and
    /// an endpoint that did not answer left alone for [`REST_AFTER_NO_ANSWER`]. Other limits
    /// stack the same layers by hand: `admin.with_timeout(..).resting_after_failure(..)`.
    pub fn layered(self) -> Resting<Timeout<Self>> {
        self.with_timeout(DEFAULT_TIMEOUT)
            .resting_after_failure(REST_AFTER_NO_ANSWER)
    }

    /// The admin URL, as given without a trailing `/`.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    fn manages(&self, authority: &str) -> bool {
        self.registries.is_empty() || self.registries.iter().any(|r| r == authority)
    }

    /// The destination, when the strategy applies to it.
    fn target<'a>(&self, request: &'a MountRequest<'_>) -> Option<&'a StoreInfo> {
        let dst = request.destination.info();
        (dst.scheme == StoreInfo::REGISTRY && self.manages(&dst.authority)).then_some(dst)
    }

    /// The repositories to link from, in order: the source, then the blob-location cache's
    /// candidates; only repositories of managed registries, never the destination itself.
    fn sources<'a>(&self, request: &'a MountRequest<'_>, target: &StoreInfo) -> Vec<&'a StoreInfo> {
        let mut out: Vec<&StoreInfo> = Vec::new();
        let places = std::iter::once(request.source.info())
            .chain(request.candidates.iter().map(|c| &c.store));
        for place in places {
            if place.scheme == StoreInfo::REGISTRY
                && self.manages(&place.authority)
                && !place.namespace.is_empty()
                && place != target
                && !out.contains(&place)
            {
                out.push(place);
            }
        }
        out
    }

    /// One `POST /admin/link`.
    async fn link(
        &self,
        request: &MountRequest<'_>,
        source: &StoreInfo,
        target: &StoreInfo,
    ) -> Answer {
        let body = LinkBody {
            digest: request.descriptor.digest().to_string(),
            size: request.descriptor.size(),
            source: Repo {
                registry: &source.authority,
                repository: &source.namespace,
            },
            target: Repo {
                registry: &target.authority,
                repository: &target.namespace,
            },
        };
        let json = match serde_json::to_vec(&body) {
            Ok(json) => json,
            Err(e) => return Answer::Refused(format!("could not encode the request: {e}")),
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.link_uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, token.clone());
        }
        let http_request = match builder.body(Body::from_bytes(json)) {
            Ok(r) => r,
            Err(e) => return Answer::Refused(format!("could not build the request: {e}")),
        };

        let started = Instant::now();
        let exchange = async {
            let response = self.client.send(http_request).await?;
            let status = response.status();
            // Only an error answer's text is used, and only its start.
            let text = match Limited::new(response.into_body(), MAX_REASON_BYTES * 8)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => Bytes::new(),
            };
            Ok::<_, ferry_core::BoxError>((status, text))
        };
        let answer = match exchange.await {
            Err(e) => Answer::Silent(connect_error_text(e.as_ref())),
            Ok((StatusCode::CREATED, _)) => Answer::Linked,
            Ok((StatusCode::CONFLICT, _)) => Answer::Present,
            Ok((status, text)) => Answer::Refused(refusal(status, &text)),
        };
        tracing::debug!(
            admin = %self.admin_url,
            digest = %request.descriptor.digest(),
            source = %source,
            target = %target,
            outcome = match &answer {
                Answer::Linked => "linked",
                Answer::Present => "already linked",
                Answer::Refused(_) => "refused",
                Answer::Silent(_) => "no answer",
            },
            ms = started.elapsed().as_millis() as u64,
            "admin link request"
        );
        answer
    }
}

/// The reason for a refusal: the status, and the start of the answer's text.
fn refusal(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut end = text.len().min(MAX_REASON_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            "; check the token given to `AdminLinkMount::with_token`"
        }
        _ => "",
    };
    if text.is_empty() {
        format!("status {status}{hint}")
    } else {
        format!("status {status}: {}{hint}", &text[..end])
    }
}

/// The innermost cause of a client error (`connection refused`), which is what a user acts on.
fn connect_error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

impl fmt::Display for AdminLinkMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminLinkMount({})", self.admin_url)
    }
}

impl fmt::Debug for AdminLinkMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminLinkMount")
            .field("admin_url", &self.admin_url)
            .field("registries", &self.registries)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl MountStrategy for AdminLinkMount {
    fn name(&self) -> &str {
        "admin-link"
    }

    /// A `409` tells the blob is already there, so an attempt that will be sent probes the
    /// destination and the engine can skip its own `HEAD`. (A resting layer around the
    /// strategy says otherwise while the endpoint is left alone.)
    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        self.target(request)
            .is_some_and(|target| !self.sources(request, target).is_empty())
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let Some(target) = self.target(request) else {
            return Ok(MountOutcome::not_applicable(format!(
                "the destination `{}` is not a registry repository that `{}` manages",
                request.destination.info(),
                self.admin_url
            )));
        };
        let sources = self.sources(request, target);
        if sources.is_empty() {
            return Ok(MountOutcome::not_applicable(format!(
                "no repository on a registry that `{}` manages is known to hold the blob",
                self.admin_url
            )));
        }
        let mut reasons = Vec::new();
        for source in sources {
            match self.link(request, source, target).await {
                Answer::Linked => {
                    return Ok(MountOutcome::mounted(
                        source,
                        MountMethod::other("admin link"),
                    ));
                }
                Answer::Present => return Ok(MountOutcome::AlreadyPresent),
                Answer::Refused(why) => reasons.push(format!("from `{source}`: {why}")),
                Answer::Silent(why) => {
                    // The next source would meet the same silence: stop here, unreachable,
                    // so that a resting layer leaves the endpoint alone for the next blobs.
                    reasons.push(format!("`{}` did not answer: {why}", self.admin_url));
                    return Ok(MountOutcome::unreachable(reasons.join("; ")));
                }
            }
        }
        Ok(MountOutcome::declined(reasons.join("; ")))
    }
}

/// [`AdminLinkMount`] by name (`admin-link`), so an application that composes chains from
/// names (the `ferry` CLI, through `ferry_cli::Ferry::with_strategy`) offers it: `--mount
/// admin-link`, `--mount-opt admin-link.url=…`, or an `[mount.admin-link]` table.
///
/// Settings: `url` (required: the admin endpoint), `token` (sent as a bearer token; keep it
/// in the configuration file rather than on a command line), `registries` (the registries
/// whose storage the endpoint manages; all when none is named). The strategy is
/// [`AdminLinkMount::layered`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminLinkFactory;

impl AdminLinkFactory {
    /// The name it is registered by: the strategy's [`MountStrategy::name`].
    pub const NAME: &'static str = "admin-link";
}

impl ferry_core::StrategyFactory for AdminLinkFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn summary(&self) -> &'static str {
        "a registry admin API links the blob between repositories on the storage it manages"
    }

    fn plan_label(&self) -> &'static str {
        "a repository the admin API links from (it cannot tell without trying)"
    }

    fn settings(&self) -> &'static [ferry_core::mount::Setting] {
        use ferry_core::mount::Setting;
        const SETTINGS: &[Setting] = &[
            Setting::required("url", "the admin endpoint, `http(s)://HOST[:PORT]`"),
            Setting::new("token", "a bearer token for the admin endpoint"),
            Setting::new("registries", "the registries whose storage it manages"),
        ];
        SETTINGS
    }

    fn build(
        &self,
        config: &ferry_core::StrategyConfig,
    ) -> Result<std::sync::Arc<dyn MountStrategy>> {
        let Some(url) = config.string(Self::NAME, "url")? else {
            return Err(Error::MissingSetting {
                strategy: Self::NAME.into(),
                key: "url".into(),
                help: "the admin endpoint".into(),
            });
        };
        let mut mount = AdminLinkMount::new(&url)?.managing(config.list(Self::NAME, "registries")?);
        if let Some(token) = config.string(Self::NAME, "token")? {
            mount = mount.with_token(token)?;
        }
        Ok(std::sync::Arc::new(mount.layered()))
    }
}
