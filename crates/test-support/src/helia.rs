//! A real IPFS node for tests: Helia behind `test-support/ipfs-gateway/gateway.mjs`,
//! started with `node` on 127.0.0.1 and a free port, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long the node may take to install and start.
const START_DEADLINE: Duration = Duration::from_secs(300);

/// The gateway's project directory.
pub fn gateway_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-support/ipfs-gateway")
}

/// Runs `npm ci` once when `node_modules` is missing.
fn install() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = gateway_dir();
    if dir.join("node_modules/@helia/http/package.json").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "running `npm ci` in `{}`: {e}; install node and npm",
                dir.display()
            )
        });
    assert!(
        status.success(),
        "`npm ci` in `{}` failed: {status}",
        dir.display()
    );
}

/// A running Helia node with its trustless gateway.
pub struct Helia {
    child: Child,
    // Held open: the gateway exits when its stdin closes, should this process die.
    _stdin: ChildStdin,
    url: String,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Helia {
    /// Starts a node with an empty blockstore.
    pub fn start() -> Self {
        install();
        let mut child = Command::new("node")
            .args(["gateway.mjs", "--exit-on-stdin-close"])
            .current_dir(gateway_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting `node gateway.mjs`: {e}; install node"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // The gateway prints its port once it listens. Read it on a thread so that a gateway
        // that never prints fails the test at the deadline instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            tx.send(result).ok();
        });
        let started = Instant::now();
        let line = match rx.recv_timeout(START_DEADLINE) {
            Ok(Ok(line)) => line,
            other => {
                child.kill().ok();
                child.wait().ok();
                panic!(
                    "the IPFS gateway did not report its port within {START_DEADLINE:?}: {other:?}"
                )
            }
        };
        let port: u16 = line.trim().parse().unwrap_or_else(|e| {
            panic!(
                "the IPFS gateway printed `{}`, not a port: {e}",
                line.trim()
            )
        });
        eprintln!("Helia gateway on port {port} after {:?}", started.elapsed());
        Self {
            child,
            _stdin: stdin,
            url: format!("http://127.0.0.1:{port}"),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The gateway's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn post(&self, path_and_query: &str, body: Bytes) -> serde_json::Value {
        let request = http::Request::post(format!("{}{path_and_query}", self.url))
            .body(Full::new(body))
            .unwrap();
        let response = self.http.request(request).await.expect("gateway request");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            status.is_success(),
            "POST {path_and_query}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).expect("gateway JSON")
    }

    /// Adds `data` as a UnixFS file (CIDv1, raw leaves, `chunk`-byte chunks), as
    /// `ipfs add --cid-version=1 --raw-leaves --chunker=size-<chunk>` does.
    pub async fn add(&self, data: &[u8], chunk: usize) -> Cid {
        self.add_query(data, &format!("chunk={chunk}&rawLeaves=true"))
            .await
    }

    /// Adds `data` like [`Helia::add`] with at most `max_children` links per node, as Kubo
    /// builds files (174), so that large files get inner levels.
    pub async fn add_with_fanout(&self, data: &[u8], chunk: usize, max_children: usize) -> Cid {
        self.add_query(
            data,
            &format!("chunk={chunk}&rawLeaves=true&maxChildren={max_children}"),
        )
        .await
    }

    async fn add_query(&self, data: &[u8], query: &str) -> Cid {
        let v = self
            .post(&format!("/add?{query}"), Bytes::copy_from_slice(data))
            .await;
        Cid::try_from(v["cid"].as_str().expect("cid")).unwrap()
    }

    /// Adds `data` as one raw block (CIDv1, raw codec, sha2-256).
    pub async fn add_raw(&self, data: &[u8]) -> Cid {
        let v = self.post("/add-raw", Bytes::copy_from_slice(data)).await;
        Cid::try_from(v["cid"].as_str().expect("cid")).unwrap()
    }

    /// Makes the gateway hold `/ipfs/` requests without answering.
    pub async fn stall(&self, on: bool) {
        self.post(&format!("/stall?on={on}"), Bytes::new()).await;
    }

    /// The CAR the gateway serves for `cid`, fetched as plain bytes.
    pub async fn car(&self, cid: &Cid) -> Bytes {
        let request = http::Request::get(format!("{}/ipfs/{cid}?format=car", self.url))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self.http.request(request).await.expect("gateway request");
        assert!(response.status().is_success(), "{}", response.status());
        response.into_body().collect().await.unwrap().to_bytes()
    }

    /// The `/ipfs/` requests served so far: (cid, format).
    pub async fn requests(&self) -> Vec<(String, String)> {
        let request = http::Request::get(format!("{}/log", self.url))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self.http.request(request).await.expect("gateway request");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let v: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
        v.iter()
            .map(|r| {
                (
                    r["cid"].as_str().unwrap_or_default().to_string(),
                    r["format"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

impl std::fmt::Debug for Helia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Helia({})", self.url)
    }
}

impl Drop for Helia {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
