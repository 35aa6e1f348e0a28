//! A token service for the registry's `auth: token` mode, run in process.
//!
//! This is the real protocol, not a stand-in: the registry verifies the JWTs this issuer signs
//! against the certificate bundle it writes, and clients obtain tokens from it exactly as they
//! do from Docker Hub's or Harbor's token service (`GET /token` with basic auth, or the OAuth2
//! `POST /token` with password and refresh-token grants). The test owns the issuer to control
//! its users and their rights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rand::RngCore as _;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::registry::TokenAuth;
use crate::util::{BackgroundServer, ServerResponse};

/// One rule of the issuer's policy: who may do what on which repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The user the rule is for; `None` for anonymous requests.
    pub user: Option<String>,
    /// The repository: an exact name, `*` for all, or `prefix/*` for a namespace.
    pub repository: String,
    /// The allowed actions (`pull`, `push`, `delete`, or `*` for all).
    pub actions: Vec<String>,
}

impl Grant {
    fn matches_repository(&self, name: &str) -> bool {
        if self.repository == "*" {
            return true;
        }
        match self.repository.strip_suffix("/*") {
            Some(prefix) => name.starts_with(prefix) && name[prefix.len()..].starts_with('/'),
            None => self.repository == name,
        }
    }

    fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == "*" || a == action)
    }
}

/// One request the issuer received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The authenticated user, `None` for anonymous or failed authentication.
    pub user: Option<String>,
    /// The OAuth2 `grant_type` of a `POST`.
    pub grant_type: Option<String>,
    /// The requested scopes, such as `repository:foo:pull,push`.
    pub scopes: Vec<String>,
    /// The status code answered.
    pub status: u16,
}

impl TokenRequest {
    /// Whether `user` asked for `action` in any scope (`repository:NAME:pull,delete` asks for
    /// `pull` and `delete`).
    pub fn asks_for(&self, user: &str, action: &str) -> bool {
        self.user.as_deref() == Some(user)
            && self.scopes.iter().any(|scope| {
                scope
                    .rsplit_once(':')
                    .is_some_and(|(_, actions)| actions.split(',').any(|a| a == action))
            })
    }
}

/// Builds a [`TokenIssuer`]: users, their rights, anonymous access.
#[derive(Debug, Clone)]
pub struct TokenIssuerBuilder {
    service: String,
    issuer: String,
    users: HashMap<String, String>,
    grants: Vec<Grant>,
    anonymous: bool,
    expires_in: u64,
}

impl Default for TokenIssuerBuilder {
    fn default() -> Self {
        Self {
            service: "ferry-test-registry".into(),
            issuer: "ferry-test-issuer".into(),
            users: HashMap::new(),
            grants: Vec::new(),
            anonymous: false,
            expires_in: 300,
        }
    }
}

impl TokenIssuerBuilder {
    /// Sets the service name (the tokens' audience). Default: `ferry-test-registry`.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Sets the issuer name (the tokens' `iss`). Default: `ferry-test-issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Adds `user` with `password`.
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(user.into(), password.into());
        self
    }

    /// Allows `user` the `actions` on `repository` (exact, `*`, or `prefix/*`).
    pub fn allow(mut self, user: &str, repository: &str, actions: &[&str]) -> Self {
        self.grants.push(grant(Some(user), repository, actions));
        self
    }

    /// Lets requests without credentials have tokens, with the rights given by
    /// [`TokenIssuerBuilder::allow_anonymous`] (none by default: an empty token).
    pub fn anonymous(mut self, enabled: bool) -> Self {
        self.anonymous = enabled;
        self
    }

    /// Enables anonymous tokens and allows them the `actions` on `repository`.
    pub fn allow_anonymous(mut self, repository: &str, actions: &[&str]) -> Self {
        self.anonymous = true;
        self.grants.push(grant(None, repository, actions));
        self
    }

    /// Sets the tokens' lifetime in seconds (default 300).
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    /// Generates a P-256 key and self-signed certificate, writes the certificate bundle and
    /// starts serving `/token` on a free port of 127.0.0.1.
    pub fn start(self) -> Result<TokenIssuer> {
        let setup = |what: &str, e: rcgen::Error| Error::Setup(format!("{what}: {e}"));
        let key = rcgen::KeyPair::generate().map_err(|e| setup("generate a P-256 key", e))?;
        let mut params = rcgen::CertificateParams::new(vec!["ferry-test-token-issuer".to_string()])
            .map_err(|e| setup("certificate parameters", e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferry test token issuer");
        let cert = params
            .self_signed(&key)
            .map_err(|e| setup("self-sign the token certificate", e))?;
        let dir = crate::util::tempdir();
        let cert_path = dir.path().join("token-issuer.pem");
        std::fs::write(&cert_path, cert.pem())
            .map_err(|e| Error::io(format!("write `{}`", cert_path.display()), e))?;
        let state = Arc::new(State {
            service: self.service,
            issuer: self.issuer,
            key: jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.der()),
            expires_in: self.expires_in,
            policy: Mutex::new(Policy {
                users: self.users,
                grants: self.grants,
                anonymous: self.anonymous,
            }),
            requests: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
        });
        let handler_state = state.clone();
        let server = BackgroundServer::start("token-issuer", move |req| {
            let state = handler_state.clone();
            async move { state.handle(req).await }
        })?;
        tracing::debug!(addr = %server.addr(), "token issuer started");
        Ok(TokenIssuer {
            server,
            state,
            cert_path,
            _dir: dir,
        })
    }
}

fn grant(user: Option<&str>, repository: &str, actions: &[&str]) -> Grant {
    Grant {
        user: user.map(str::to_string),
        repository: repository.to_string(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
    }
}

/// A running token service for registries in `auth: token` mode; stops on drop.
///
/// ```no_run
/// use ferry_test_support::{Registry, TokenIssuer};
/// let issuer = TokenIssuer::builder()
///     .user("alice", "pw")
///     .allow("alice", "team/*", &["pull", "push"])
///     .start()?;
/// let registry = Registry::builder().token_auth(&issuer).start()?;
/// # Ok::<(), ferry_test_support::Error>(())
/// ```
pub struct TokenIssuer {
    server: BackgroundServer,
    state: Arc<State>,
    cert_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("addr", &self.server.addr())
            .field("service", &self.state.service)
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A builder with no users and no anonymous access.
    pub fn builder() -> TokenIssuerBuilder {
        TokenIssuerBuilder::default()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.server.addr().to_string()
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token`: the registry's `realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr())
    }

    /// The service name (audience).
    pub fn service(&self) -> &str {
        &self.state.service
    }

    /// The issuer name.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The PEM file holding the signing certificate: the registry's `rootcertbundle`.
    pub fn cert_bundle(&self) -> &Path {
        &self.cert_path
    }

    /// The `auth: token` settings of a registry that trusts this issuer.
    pub fn registry_auth(&self) -> TokenAuth {
        TokenAuth {
            realm: self.realm(),
            service: self.state.service.clone(),
            issuer: self.state.issuer.clone(),
            root_cert_bundle: self.cert_path.clone(),
        }
    }

    /// Adds (or changes the password of) `user` while running.
    pub fn add_user(&self, user: &str, password: &str) {
        self.state
            .policy
            .lock()
            .expect("lock")
            .users
            .insert(user.to_string(), password.to_string());
    }

    /// Allows `user` (`None`: anonymous) the `actions` on `repository` while running.
    pub fn allow(&self, user: Option<&str>, repository: &str, actions: &[&str]) {
        self.state
            .policy
            .lock()
            .expect("lock")
            .grants
            .push(grant(user, repository, actions));
    }

    /// Removes every right of `user` (`None`: anonymous).
    pub fn revoke(&self, user: Option<&str>) {
        self.state
            .policy
            .lock()
            .expect("lock")
            .grants
            .retain(|g| g.user.as_deref() != user);
    }

    /// Signs a token for `user` (`None`: anonymous) with the rights the policy grants for
    /// `scopes` (such as `repository:foo:pull,push`), without checking a password.
    pub fn token_for(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let access = self.state.granted(user, &scopes);
        self.state.sign(user, access).expect("sign a token")
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.state.requests.lock().expect("lock").len()
    }

    /// Forgets the requests received so far.
    pub fn reset_counts(&self) {
        self.state.requests.lock().expect("lock").clear();
    }
}

#[derive(Debug)]
struct Policy {
    users: HashMap<String, String>,
    grants: Vec<Grant>,
    anonymous: bool,
}

struct State {
    service: String,
    issuer: String,
    key: jsonwebtoken::EncodingKey,
    x5c: String,
    expires_in: u64,
    policy: Mutex<Policy>,
    requests: Mutex<Vec<TokenRequest>>,
    refresh_tokens: Mutex<HashMap<String, String>>,
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

/// Parses `type:name:actions`; the name may itself hold colons (`host:port/repo`).
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        kind.to_string(),
        name.to_string(),
        actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `seconds` since the epoch as RFC 3339 UTC.
fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    crate::util::hex(&bytes)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> ServerResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            "www-authenticate",
            "Basic realm=\"ferry-test-token-issuer\""
                .parse()
                .expect("header"),
        );
    }
    Ok(response)
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({"errors": [{"code": code, "message": message}], "error": code, "error_description": message})
}

impl State {
    /// The intersection of what `scopes` ask and what the policy allows `user`.
    fn granted(&self, user: Option<&str>, scopes: &[String]) -> Vec<Access> {
        let policy = self.policy.lock().expect("lock");
        let mut out: Vec<Access> = Vec::new();
        for scope in scopes {
            let Some((kind, name, actions)) = parse_scope(scope) else {
                continue;
            };
            if kind != "repository" {
                continue;
            }
            let allowed: Vec<String> = actions
                .into_iter()
                .filter(|action| {
                    policy.grants.iter().any(|g| {
                        g.user.as_deref() == user && g.matches_repository(&name) && g.allows(action)
                    })
                })
                .collect();
            if allowed.is_empty() {
                continue;
            }
            match out.iter_mut().find(|a| a.kind == kind && a.name == name) {
                Some(existing) => {
                    for action in allowed {
                        if !existing.actions.contains(&action) {
                            existing.actions.push(action);
                        }
                    }
                }
                None => out.push(Access {
                    kind,
                    name,
                    actions: allowed,
                }),
            }
        }
        out
    }

    fn sign(&self, user: Option<&str>, access: Vec<Access>) -> Result<String> {
        let now = now();
        let claims = Claims {
            iss: &self.issuer,
            sub: user.unwrap_or(""),
            aud: &self.service,
            exp: now + self.expires_in,
            nbf: now.saturating_sub(10),
            iat: now,
            jti: random_id(),
            access,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5c = Some(vec![self.x5c.clone()]);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::Setup(format!("sign a token: {e}")))
    }

    /// Checks basic-auth credentials: `Ok(None)` for anonymous, `Err(())` when rejected.
    fn authenticate(&self, authorization: Option<&str>) -> std::result::Result<Option<String>, ()> {
        let policy = self.policy.lock().expect("lock");
        let Some(value) = authorization else {
            return if policy.anonymous { Ok(None) } else { Err(()) };
        };
        let encoded = value.strip_prefix("Basic ").ok_or(())?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (user, password) = decoded.split_once(':').ok_or(())?;
        self.check_password(&policy, user, password)
    }

    fn check_password(
        &self,
        policy: &Policy,
        user: &str,
        password: &str,
    ) -> std::result::Result<Option<String>, ()> {
        match policy.users.get(user) {
            Some(expected) if expected == password => Ok(Some(user.to_string())),
            _ => Err(()),
        }
    }

    fn record(
        &self,
        method: &Method,
        user: Option<&str>,
        grant_type: Option<&str>,
        scopes: &[String],
        status: u16,
    ) {
        tracing::debug!(%method, user = user.unwrap_or("<anonymous>"), ?scopes, status, "token request");
        self.requests.lock().expect("lock").push(TokenRequest {
            method: method.to_string(),
            user: user.map(str::to_string),
            grant_type: grant_type.map(str::to_string),
            scopes: scopes.to_vec(),
            status,
        });
    }

    fn token_answer(
        &self,
        user: Option<&str>,
        scopes: &[String],
        refresh_token: Option<String>,
    ) -> ServerResponse {
        let access = self.granted(user, scopes);
        let scope_text = access
            .iter()
            .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
            .collect::<Vec<_>>()
            .join(" ");
        let token = match self.sign(user, access) {
            Ok(t) => t,
            Err(e) => {
                return json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_body("INTERNAL", &e.to_string()),
                );
            }
        };
        let mut body = json!({
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": rfc3339(now()),
            "scope": scope_text,
        });
        if let Some(refresh) = refresh_token {
            body["refresh_token"] = json!(refresh);
        }
        json_response(StatusCode::OK, body)
    }

    fn new_refresh_token(&self, user: &str) -> String {
        let token = format!("ferry-refresh-{}", random_id());
        self.refresh_tokens
            .lock()
            .expect("lock")
            .insert(token.clone(), user.to_string());
        token
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> ServerResponse {
        let method = req.method().clone();
        if req.uri().path() != "/token" {
            return json_response(
                StatusCode::NOT_FOUND,
                error_body("NOT_FOUND", "only /token is served"),
            );
        }
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match method {
            Method::GET => {
                let scopes: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| k == "scope")
                    .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some((_, service)) = query.iter().find(|(k, _)| k == "service")
                    && service != &self.service
                {
                    self.record(&method, None, None, &scopes, 400);
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        error_body(
                            "INVALID_SERVICE",
                            &format!("this issuer serves `{}`, not `{service}`", self.service),
                        ),
                    );
                }
                let user = match self.authenticate(authorization.as_deref()) {
                    Ok(user) => user,
                    Err(()) => {
                        self.record(&method, None, None, &scopes, 401);
                        return json_response(
                            StatusCode::UNAUTHORIZED,
                            error_body(
                                "UNAUTHORIZED",
                                "authentication required: wrong or missing user name and password",
                            ),
                        );
                    }
                };
                let offline = query
                    .iter()
                    .any(|(k, v)| k == "offline_token" && v == "true");
                let refresh = match (&user, offline) {
                    (Some(u), true) => Some(self.new_refresh_token(u)),
                    _ => None,
                };
                self.record(&method, user.as_deref(), None, &scopes, 200);
                self.token_answer(user.as_deref(), &scopes, refresh)
            }
            Method::POST => {
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => {
                        return json_response(
                            StatusCode::BAD_REQUEST,
                            error_body("BAD_REQUEST", &e.to_string()),
                        );
                    }
                };
                let form: HashMap<String, String> =
                    url::form_urlencoded::parse(&body).into_owned().collect();
                let scopes: Vec<String> = form
                    .get("scope")
                    .map(|s| {
                        s.split(' ')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let grant_type = form.get("grant_type").map(String::as_str);
                if let Some(service) = form.get("service")
                    && service != &self.service
                {
                    self.record(&method, None, grant_type, &scopes, 400);
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        error_body(
                            "invalid_request",
                            &format!("this issuer serves `{}`, not `{service}`", self.service),
                        ),
                    );
                }
                let user = match grant_type {
                    Some("password") => {
                        let policy = self.policy.lock().expect("lock");
                        let user = form.get("username").map(String::as_str).unwrap_or("");
                        let password = form.get("password").map(String::as_str).unwrap_or("");
                        self.check_password(&policy, user, password).ok().flatten()
                    }
                    Some("refresh_token") => form
                        .get("refresh_token")
                        .and_then(|t| self.refresh_tokens.lock().expect("lock").get(t).cloned()),
                    _ => {
                        self.record(&method, None, grant_type, &scopes, 400);
                        return json_response(
                            StatusCode::BAD_REQUEST,
                            error_body(
                                "unsupported_grant_type",
                                "use grant_type `password` or `refresh_token`",
                            ),
                        );
                    }
                };
                let Some(user) = user else {
                    self.record(&method, None, grant_type, &scopes, 401);
                    return json_response(
                        StatusCode::UNAUTHORIZED,
                        error_body(
                            "invalid_grant",
                            "wrong user name, password or refresh token",
                        ),
                    );
                };
                let refresh = match grant_type {
                    Some("refresh_token") => form.get("refresh_token").cloned(),
                    _ => Some(self.new_refresh_token(&user)),
                };
                self.record(&method, Some(&user), grant_type, &scopes, 200);
                self.token_answer(Some(&user), &scopes, refresh)
            }
            _ => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                error_body("UNSUPPORTED", "use GET or POST"),
            ),
        }
    }
}
