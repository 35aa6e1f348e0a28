//! A registry vendor's admin API, in process, in front of real `docker-registry` instances.
//!
//! This server is a fake on purpose: it stands for the admin endpoint a registry product
//! offers to link content between repositories on its own storage, which the CNCF
//! distribution registry does not have. It acts on the real storage directory that the real
//! registries serve, the way such an API would: it writes the repository link file
//! (`<root>/docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link`) when the blob
//! data exists and the source repository links it. Every request is recorded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;

/// A request the server answered, and how.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request body, parsed (`null` when it was not JSON).
    pub body: serde_json::Value,
    /// The status answered.
    pub status: u16,
}

struct State {
    /// Registry authority (`127.0.0.1:PORT`) → its storage root directory.
    registries: HashMap<String, PathBuf>,
    token: Option<String>,
    requests: Mutex<Vec<Recorded>>,
}

/// The admin server, bound to 127.0.0.1 on a port the system chose; stops when dropped.
pub struct AdminServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Serves the registries `(authority, storage root)`; requires `Bearer <token>` when a
    /// token is given.
    pub async fn start(registries: &[(&str, &Path)], token: Option<&str>) -> AdminServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the admin server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            registries: registries
                .iter()
                .map(|(a, r)| (a.to_string(), r.to_path_buf()))
                .collect(),
            token: token.map(str::to_string),
            requests: Mutex::new(Vec::new()),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so aborting this task closes them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AdminServer { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct LinkBody {
    digest: String,
    size: u64,
    source: Repo,
    target: Repo,
}

#[derive(Deserialize)]
struct Repo {
    registry: String,
    repository: String,
}

fn answer(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({ "error": message }).to_string(),
        )))
        .unwrap()
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let ok_route = req.method() == Method::POST && req.uri().path() == "/admin/link";
    let authorized = match &state.token {
        None => true,
        Some(t) => req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {t}").as_bytes()),
    };
    let bytes = req.into_body().collect().await.map(|b| b.to_bytes());
    let body: serde_json::Value = bytes
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(serde_json::Value::Null);
    let response = if !ok_route {
        answer(StatusCode::NOT_FOUND, "no such admin route")
    } else if !authorized {
        answer(StatusCode::UNAUTHORIZED, "a valid admin token is required")
    } else {
        match serde_json::from_value::<LinkBody>(body.clone()) {
            Ok(link) => link_blob(state, &link),
            Err(e) => answer(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
        }
    };
    state.requests.lock().unwrap().push(Recorded {
        body,
        status: response.status().as_u16(),
    });
    response
}

/// A repository name of the distribution grammar: lowercase components joined by `/`.
fn valid_repository(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

fn link_path(root: &Path, repository: &str, hex: &str) -> PathBuf {
    root.join("docker/registry/v2/repositories")
        .join(repository)
        .join("_layers/sha256")
        .join(hex)
        .join("link")
}

/// Whether `path` is a link file naming `digest`.
fn links(path: &Path, digest: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|content| content == digest)
}

fn link_blob(state: &State, link: &LinkBody) -> Response<Full<Bytes>> {
    let Some(hex) = link.digest.strip_prefix("sha256:").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }) else {
        return answer(
            StatusCode::BAD_REQUEST,
            "only sha256 digests are stored here",
        );
    };
    for repo in [&link.source, &link.target] {
        if !valid_repository(&repo.repository) {
            return answer(StatusCode::BAD_REQUEST, "invalid repository name");
        }
    }
    let Some(target_root) = state.registries.get(&link.target.registry) else {
        return answer(
            StatusCode::NOT_FOUND,
            "the target registry is not managed here",
        );
    };
    let Some(source_root) = state.registries.get(&link.source.registry) else {
        return answer(
            StatusCode::NOT_FOUND,
            "the source registry is not managed here",
        );
    };
    if source_root != target_root {
        return answer(
            StatusCode::NOT_FOUND,
            "the source registry is not on the target's storage",
        );
    }
    let data = target_root
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let target_link = link_path(target_root, &link.target.repository, hex);
    if data.is_file() && links(&target_link, &link.digest) {
        return answer(StatusCode::CONFLICT, "the target already links the blob");
    }
    if !data.is_file()
        || !links(
            &link_path(source_root, &link.source.repository, hex),
            &link.digest,
        )
    {
        return answer(
            StatusCode::NOT_FOUND,
            "the source repository does not hold the blob",
        );
    }
    let size = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
    if size != link.size {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("the blob has {size} bytes, not {}", link.size),
        );
    }
    // Written whole under another name, then renamed: a registry never reads half a link.
    let dir = target_link.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let temporary = dir.join(format!("link.tmp-{}", rand_suffix()));
    std::fs::write(&temporary, &link.digest).unwrap();
    std::fs::rename(&temporary, &target_link).unwrap();
    answer(StatusCode::CREATED, "linked")
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
