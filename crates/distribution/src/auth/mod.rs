//! Authentication: anonymous, HTTP Basic, and bearer tokens from the `WWW-Authenticate`
//! challenge (docker token protocol and OAuth2 refresh tokens), with a token cache.
//!
//! No request pings `/v2/` first: a registry's scheme is learned from its first 401, and from
//! then on every request carries a fitting `Authorization` up front. Anonymous registries are
//! never asked an extra request.

pub mod challenge;
pub mod credentials;
pub mod scope;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use ferry_core::{Error, Result};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use tokio::sync::OnceCell;
use url::Url;

pub use crate::clock::{Clock, SystemClock};
use crate::error::status_error;
use crate::transport::{Payload, Req, Transport, read_body, read_error_body};
pub use challenge::{Challenge, parse_challenges};
pub use credentials::{Credential, CredentialLocation, Credentials};
pub use scope::{ScopeSet, Scopes};

/// The longest a token is kept when its server says nothing (the spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
const TOKEN_BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
enum Scheme {
    /// No 401 seen yet: requests go out anonymously.
    Unknown,
    Basic,
    Bearer {
        realm: Url,
        service: Option<String>,
    },
}

struct CachedToken {
    realm: Url,
    service: Option<String>,
    asked: ScopeSet,
    header: HeaderValue,
    expires: Instant,
}

/// The authentication state of one registry host, shared by all its repositories.
pub(crate) struct HostAuth {
    registry: String,
    credentials: Credentials,
    credential: OnceCell<Option<Credential>>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<Vec<CachedToken>>,
    fetching: tokio::sync::Mutex<()>,
    transport: Arc<Transport>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HostAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAuth")
            .field("registry", &self.registry)
            .field("scheme", &*self.scheme.lock().expect("scheme lock"))
            .finish_non_exhaustive()
    }
}

impl HostAuth {
    pub(crate) fn new(
        registry: &str,
        credentials: Credentials,
        transport: Arc<Transport>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            registry: registry.to_string(),
            credentials,
            credential: OnceCell::new(),
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(Vec::new()),
            fetching: tokio::sync::Mutex::new(()),
            transport,
            clock,
        }
    }

    async fn credential(&self) -> Result<Option<Credential>> {
        self.credential
            .get_or_try_init(|| self.credentials.lookup(&self.registry))
            .await
            .cloned()
    }

    /// Whether credentials are configured for this registry (explicit, a docker config or a
    /// credential helper), as opposed to anonymous access.
    pub(crate) async fn has_credential(&self) -> bool {
        matches!(self.credential().await, Ok(Some(_)))
    }

    /// How the registry asked for credentials: `None` while it has not, `Some(true)` for
    /// bearer tokens, `Some(false)` for HTTP Basic.
    pub(crate) fn uses_token(&self) -> Option<bool> {
        match &*self.scheme.lock().expect("scheme lock") {
            Scheme::Unknown => None,
            Scheme::Basic => Some(false),
            Scheme::Bearer { .. } => Some(true),
        }
    }

    /// The `Authorization` for a request needing `scopes`, from what is known of the
    /// registry's scheme; `None` while no challenge was seen or when anonymous.
    pub(crate) async fn header(&self, scopes: &Scopes) -> Result<Option<HeaderValue>> {
        let scheme = self.scheme.lock().expect("scheme lock").clone();
        match scheme {
            Scheme::Unknown => Ok(None),
            Scheme::Basic => Ok(self.basic_header().await?),
            Scheme::Bearer { realm, service } => self
                .bearer(&realm, service.as_deref(), scopes, None)
                .await
                .map(Some),
        }
    }

    async fn basic_header(&self) -> Result<Option<HeaderValue>> {
        Ok(match self.credential().await? {
            Some(Credential::Basic { username, password }) => Some(basic(&username, &password)),
            Some(Credential::BearerToken(t)) => bearer_value(&t),
            _ => None,
        })
    }

    /// Learns from a 401's challenge. Returns the `Authorization` to retry with, or `None`
    /// when another try cannot do better than `used`.
    pub(crate) async fn on_unauthorized(
        &self,
        headers: &HeaderMap,
        scopes: &Scopes,
        used: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>> {
        let challenges: Vec<Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let bearer = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.realm().is_some());
        let next = if let Some(c) = bearer {
            let realm = match Url::parse(c.realm().unwrap_or_default()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                _ => {
                    return Err(Error::store(
                        &self.registry,
                        format!(
                            "the registry named `{}` as its token realm, which is not an http(s) URL",
                            ferry_core::redact::url(c.realm().unwrap_or_default())
                        ),
                    ));
                }
            };
            let service = c.service().map(str::to_string);
            *self.scheme.lock().expect("scheme lock") = Scheme::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            };
            let mut wanted = scopes.clone();
            for s in c.scopes() {
                wanted.required.add_scope(s);
            }
            tracing::debug!(
                registry = %self.registry,
                error = c.error().unwrap_or(""),
                scopes = ?wanted.all().to_strings(),
                "bearer challenge"
            );
            // A token that was refused (expired, revoked, or short of scope) is not used again.
            Some(
                self.bearer(&realm, service.as_deref(), &wanted, used)
                    .await?,
            )
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            *self.scheme.lock().expect("scheme lock") = Scheme::Basic;
            self.basic_header().await?
        } else {
            None
        };
        Ok(next.filter(|n| Some(n) != used))
    }

    async fn bearer(
        &self,
        realm: &Url,
        service: Option<&str>,
        scopes: &Scopes,
        refused: Option<&HeaderValue>,
    ) -> Result<HeaderValue> {
        if let Some(Credential::BearerToken(t)) = self.credential().await? {
            return bearer_value(&t).ok_or_else(|| {
                Error::invalid(
                    "registry token",
                    "<redacted>",
                    "it holds characters not allowed in a header",
                )
            });
        }
        let all = scopes.all();
        if let Some(h) = self.cached(realm, service, &all, refused) {
            return Ok(h);
        }
        // One token request at a time per registry: concurrent requests needing the same
        // scopes wait for it and find it in the cache.
        let _guard = self.fetching.lock().await;
        if let Some(h) = self.cached(realm, service, &all, refused) {
            return Ok(h);
        }
        let (header, lifetime) = match self.fetch_token(realm, service, &all).await {
            Ok(t) => t,
            Err(e) if !scopes.optional.is_empty() => {
                // The token server refused the combined scopes: the required ones alone.
                tracing::debug!(registry = %self.registry, error = %e, "token with optional scopes refused, asking for the required ones");
                self.fetch_token(realm, service, &scopes.required).await?
            }
            Err(e) => return Err(e),
        };
        let margin = (lifetime / 4).min(Duration::from_secs(30));
        let mut tokens = self.tokens.lock().expect("tokens lock");
        let now = self.clock.now();
        tokens.retain(|t| t.expires > now && Some(&t.header) != refused);
        tokens.push(CachedToken {
            realm: realm.clone(),
            service: service.map(str::to_string),
            asked: all,
            header: header.clone(),
            expires: now + lifetime - margin,
        });
        Ok(header)
    }

    fn cached(
        &self,
        realm: &Url,
        service: Option<&str>,
        wanted: &ScopeSet,
        refused: Option<&HeaderValue>,
    ) -> Option<HeaderValue> {
        let now = self.clock.now();
        let tokens = self.tokens.lock().expect("tokens lock");
        tokens
            .iter()
            .rev()
            .find(|t| {
                t.expires > now
                    && Some(&t.header) != refused
                    && &t.realm == realm
                    && t.service.as_deref() == service
                    && t.asked.covers(wanted)
            })
            .map(|t| t.header.clone())
    }

    /// Asks the token server for a token; returns the header value and its lifetime.
    async fn fetch_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scopes: &ScopeSet,
    ) -> Result<(HeaderValue, Duration)> {
        let credential = self.credential().await?;
        let scope_strings = scopes.to_strings();
        let req = match &credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", refresh);
                form.append_pair("client_id", "ferry");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scope_strings.is_empty() {
                    form.append_pair("scope", &scope_strings.join(" "));
                }
                Req::new(Method::POST, realm.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Payload::Bytes(Bytes::from(form.finish())))
            }
            _ => {
                let mut url = realm.clone();
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in &scope_strings {
                        q.append_pair("scope", s);
                    }
                    if let Some(Credential::Basic { username, .. }) = &credential {
                        q.append_pair("account", username);
                    }
                }
                let mut req = Req::new(Method::GET, url);
                if let Some(Credential::Basic { username, password }) = &credential {
                    req.headers.insert(AUTHORIZATION, basic(username, password));
                }
                req
            }
        };
        let what = format!("token for {}", scope_strings.join(" "));
        // The realm is the registry's to name: it may carry credentials of its own.
        let realm = crate::transport::redact_url(realm);
        tracing::debug!(registry = %self.registry, realm = %realm, scopes = ?scope_strings, "requesting token");
        let resp = self.transport.send(req).await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let body = read_error_body(resp).await;
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST
                    if credential.is_some() =>
                {
                    Error::Unauthenticated {
                        store: self.registry.clone(),
                        message: format!(
                            "the token server `{realm}` refused the credentials for `{}` (HTTP {status}); check the user name and password or log in again",
                            self.registry
                        ),
                    }
                }
                _ => status_error(&self.registry, &what, status, &body),
            });
        }
        let body = read_body(resp, TOKEN_BODY_LIMIT).await?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Error::store(
                &self.registry,
                format!("the token server `{realm}` gave no token JSON: {e}"),
            )
        })?;
        let token = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::store(
                    &self.registry,
                    format!("the token server `{realm}` answered without a token"),
                )
            })?;
        let header = bearer_value(&token).ok_or_else(|| {
            Error::store(
                &self.registry,
                "the token server gave a token that is not a valid header value",
            )
        })?;
        let lifetime = answer
            .expires_in
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, |s| {
                Duration::from_secs(s.min(86_400))
            });
        Ok((header, lifetime))
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn basic(username: &str, password: &str) -> HeaderValue {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header");
    v.set_sensitive(true);
    v
}

fn bearer_value(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}
