//! [`StorageRoot`]: where one registry keeps its data, reached through `object_store`.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
#[cfg(feature = "s3")]
use std::str::FromStr;
use std::sync::Arc;
#[cfg(feature = "s3")]
use std::time::Duration;

use ferry_core::{Error, Result};
use object_store::ObjectStore;
#[cfg(feature = "s3")]
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
#[cfg(feature = "s3")]
use object_store::{ClientConfigKey, RetryConfig};

/// The option keys [`StorageRoot::parse`] accepts for S3 roots besides every key
/// `object_store` knows for S3 (`aws_*` names included).
#[cfg(feature = "s3")]
pub const S3_OPTION_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "allow_http",
    "virtual_hosted_style_request",
    "timeout",
    "connect_timeout",
    "max_retries",
    "retry_timeout",
];

/// The option key that marks a root as trusted (see [`StorageRoot::with_trusted`]).
pub const TRUSTED_KEY: &str = "trusted";

/// How long one S3 request may take by default (a server-side copy of a large layer included).
#[cfg(feature = "s3")]
pub const DEFAULT_S3_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting to an S3 endpoint may take by default.
#[cfg(feature = "s3")]
pub const DEFAULT_S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a failed S3 request is retried by default.
#[cfg(feature = "s3")]
pub const DEFAULT_S3_MAX_RETRIES: usize = 2;
/// How long retries of one S3 request may go on by default.
#[cfg(feature = "s3")]
pub const DEFAULT_S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// How the S3 client retries by default, as ferry's one retry policy: two retries within
/// [`DEFAULT_S3_RETRY_TIMEOUT`] (a storage that stays down is given up on quickly: the strategy
/// rests, and blobs are streamed).
#[cfg(feature = "s3")]
pub fn default_s3_retry() -> ferry_core::RetryPolicy {
    ferry_core::RetryPolicy::default()
        .with_max_retries(DEFAULT_S3_MAX_RETRIES as u32)
        .with_max_wait(DEFAULT_S3_RETRY_TIMEOUT)
}

/// object_store's retry settings for `policy`: its back-off starts at the policy's base delay
/// and doubles up to its largest wait (object_store draws each wait at random below that,
/// as ferry's policy does), within its retries and its waiting budget.
#[cfg(feature = "s3")]
pub fn s3_retry(policy: &ferry_core::RetryPolicy) -> RetryConfig {
    RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: policy.base_delay,
            max_backoff: policy.max_delay,
            base: 2.0,
        },
        max_retries: policy.max_retries as usize,
        retry_timeout: policy.max_wait,
    }
}

/// The storage backend a root lives on, which decides how a blob gets from one root to
/// another without passing through the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A local (or network-mounted) filesystem; blobs are hardlinked.
    Filesystem {
        /// The root directory, absolute.
        path: PathBuf,
    },
    /// An S3-compatible bucket; blobs are copied server-side (`CopyObject`).
    S3 {
        /// The endpoint URL, such as `http://127.0.0.1:8333` or
        /// `https://s3.eu-west-1.amazonaws.com`, without credentials.
        endpoint: String,
        /// The bucket.
        bucket: String,
    },
    /// A store given by the caller; roots with equal ids are copied between with
    /// [`copy`](object_store::ObjectStoreExt::copy) of the destination's store.
    Custom {
        /// What identifies the backend, such as `gcs:my-bucket`.
        id: String,
    },
}

impl Backend {
    /// Whether the destination's store can copy an object of `other` to itself server-side:
    /// both on filesystems (hardlinks; whether they are one filesystem is checked when
    /// mounting), both in one S3 bucket of one endpoint, or custom stores with one id.
    pub fn can_copy_from(&self, other: &Backend) -> bool {
        match (self, other) {
            (Backend::Filesystem { .. }, Backend::Filesystem { .. }) => true,
            (
                Backend::S3 {
                    endpoint: e1,
                    bucket: b1,
                },
                Backend::S3 {
                    endpoint: e2,
                    bucket: b2,
                },
            ) => e1 == e2 && b1 == b2,
            (Backend::Custom { id: a }, Backend::Custom { id: b }) => a == b,
            _ => false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Backend::Filesystem { .. } => "filesystem",
            Backend::S3 { .. } => "S3",
            Backend::Custom { .. } => "custom store",
        }
    }
}

/// The storage root of one registry that keeps its data in the CNCF distribution layout
/// (`<root>/docker/registry/v2/...`): an [`ObjectStore`], the prefix of the root inside it
/// (the registry's `rootdirectory`), the [`Backend`] it lives on, and whether its blob data is
/// trusted without being hashed.
///
/// ```
/// use ferry_fs_store::distribution_storage::StorageRoot;
/// let root = StorageRoot::parse("file:///srv/registry-a", [("trusted", "true")])?;
/// assert!(root.is_trusted());
/// assert_eq!(root.local_path(), Some(std::path::Path::new("/srv/registry-a")));
/// # Ok::<(), ferry_core::Error>(())
/// ```
#[derive(Clone)]
pub struct StorageRoot {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    backend: Backend,
    trusted: bool,
    url: String,
}

impl fmt::Debug for StorageRoot {
    // The store's own Debug output may hold credentials: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageRoot")
            .field("url", &self.url)
            .field("backend", &self.backend)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for StorageRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)?;
        if self.trusted {
            f.write_str(" (trusted)")?;
        }
        Ok(())
    }
}

fn bad_url(url: &str, reason: impl Into<String>) -> Error {
    Error::invalid("storage URL", url, reason)
}

fn bad_option(key: &str, value: &str, reason: impl Into<String>) -> Error {
    // The value is not quoted back: it may be a secret.
    let _ = value;
    Error::invalid("storage option", key, reason)
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad_option(key, value, "expected `true` or `false`")),
    }
}

/// Parses `30`, `30s`, `500ms`, `2m` as a duration.
#[cfg(feature = "s3")]
pub(super) fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let v = value.trim();
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: u64 = number.parse().map_err(|_| {
        bad_option(
            key,
            value,
            format!("expected a duration such as `30s`, `500ms` or `2m`, got `{v}`"),
        )
    })?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(bad_option(
            key,
            value,
            format!("unknown unit `{unit}`; use `ms`, `s` or `m`"),
        )),
    }
}

impl StorageRoot {
    /// A root from a URL and options, as a configuration file gives them:
    ///
    /// - `file:///abs/path`: a registry with the `filesystem` driver and that
    ///   `rootdirectory`. The directory need not exist yet (a registry creates it on its
    ///   first write); its parent must when mounting.
    /// - `s3://bucket/prefix`: a registry with the `s3` driver, that `bucket` and
    ///   `rootdirectory: /prefix` (no prefix: `rootdirectory: /`). Endpoint, region and
    ///   credentials come from `options` (keys in [`S3_OPTION_KEYS`], or any S3 key
    ///   `object_store` knows), else from the standard `AWS_*` environment variables
    ///   (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`). `timeout`, `connect_timeout` (durations such
    ///   as `30s`), `max_retries` and `retry_timeout` bound the requests.
    ///
    /// The key `trusted` (`true`/`false`) is accepted for both; see
    /// [`StorageRoot::with_trusted`]. Unknown keys are refused, so a typo cannot silently
    /// fall back to the environment.
    pub fn parse<K, V>(url: &str, options: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let options: Vec<(String, String)> = options
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        let mut trusted = false;
        let mut rest = Vec::new();
        for (key, value) in options {
            if key == TRUSTED_KEY {
                trusted = parse_bool(&key, &value)?;
            } else {
                rest.push((key, value));
            }
        }
        let parsed = url::Url::parse(url).map_err(|e| {
            bad_url(
                url,
                format!("not a URL ({e}); use `file:///absolute/path` or `s3://bucket/prefix`"),
            )
        })?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // `bad_url` quotes the URL without them.
            return Err(bad_url(
                url,
                "credentials do not go in the storage URL; give S3 keys as the options \
                 `access_key_id` and `secret_access_key` (or the `AWS_*` environment)",
            ));
        }
        let root = match parsed.scheme() {
            "file" => {
                if let Some((key, _)) = rest.first() {
                    return Err(Error::invalid(
                        "storage option",
                        key.clone(),
                        format!(
                            "`{url}` is a filesystem root, which takes no option but `{TRUSTED_KEY}`"
                        ),
                    ));
                }
                if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(bad_url(
                        url,
                        "a file URL names no host; write `file:///absolute/path` (three slashes)",
                    ));
                }
                let path = parsed.to_file_path().map_err(|()| {
                    bad_url(url, "not an absolute path; write `file:///absolute/path`")
                })?;
                Self::filesystem(path)?
            }
            #[cfg(feature = "s3")]
            "s3" | "s3a" => {
                let bucket = parsed.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() {
                    return Err(bad_url(url, "no bucket; write `s3://bucket/prefix`"));
                }
                let prefix = parsed.path().trim_matches('/').to_string();
                Self::s3(&bucket, &prefix, rest)?
            }
            #[cfg(not(feature = "s3"))]
            "s3" | "s3a" => {
                let _ = rest;
                return Err(bad_url(
                    url,
                    "S3 roots need the `s3` feature of ferry-fs-store, which this program was \
                     built without",
                ));
            }
            other => {
                return Err(bad_url(
                    url,
                    format!(
                        "unsupported scheme `{other}`; use `file:///absolute/path` or `s3://bucket/prefix`"
                    ),
                ));
            }
        };
        Ok(root.with_trusted(trusted))
    }

    /// A root on a filesystem: the `rootdirectory` of a registry with the `filesystem` driver.
    /// `path` must be absolute. It need not exist (a registry that has never stored anything
    /// has no root yet, and the first mount creates it), but its parent must when mounting.
    pub fn filesystem(path: impl Into<PathBuf>) -> Result<Self> {
        let path: PathBuf = path.into();
        if !path.is_absolute() {
            return Err(bad_url(
                &path.display().to_string(),
                "a storage root must be an absolute path",
            ));
        }
        let prefix = Path::from_absolute_path(&path).map_err(|e| {
            bad_url(
                &path.display().to_string(),
                format!("cannot be used as an object path: {e}"),
            )
        })?;
        let url = url::Url::from_file_path(&path)
            .map(String::from)
            .unwrap_or_else(|()| format!("file://{}", path.display()));
        Ok(Self {
            // One store for every filesystem root (rooted at `/`), so that a copy between two
            // roots is a hardlink made by `LocalFileSystem::copy`.
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            backend: Backend::Filesystem { path },
            trusted: false,
            url,
        })
    }

    /// A root in an S3-compatible bucket: `rootdirectory: /<prefix>` of a registry with the
    /// `s3` driver. `options` as in [`StorageRoot::parse`] (without `trusted`), over the
    /// `AWS_*` environment.
    ///
    /// The S3 client's TLS is ferry's TLS policy ([`ferry_http::TlsPolicy`]: rustls with
    /// the `ring` provider given to it explicitly, the system's roots or `SSL_CERT_FILE`); no
    /// process-wide provider is needed or installed.
    #[cfg(feature = "s3")]
    pub fn s3<K, V>(
        bucket: &str,
        prefix: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // Defaults under the environment's settings, which options then override.
        for (key, default) in [
            (ClientConfigKey::Timeout, DEFAULT_S3_TIMEOUT),
            (ClientConfigKey::ConnectTimeout, DEFAULT_S3_CONNECT_TIMEOUT),
        ] {
            let key = AmazonS3ConfigKey::Client(key);
            if builder.get_config_value(&key).is_none() {
                builder = builder.with_config(key, format!("{}s", default.as_secs()));
            }
        }
        let mut retry = s3_retry(&default_s3_retry());
        for (key, value) in options {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "max_retries" => {
                    retry.max_retries = value.trim().parse().map_err(|_| {
                        bad_option(key, value, "expected a number of retries, such as `2`")
                    })?
                }
                "retry_timeout" => retry.retry_timeout = parse_duration(key, value)?,
                "bucket" | "aws_bucket" | "bucket_name" | "aws_bucket_name" => {
                    return Err(bad_option(
                        key,
                        value,
                        format!("the bucket is part of the URL: `s3://{bucket}/...`"),
                    ));
                }
                _ => {
                    let parsed = AmazonS3ConfigKey::from_str(key).map_err(|_| {
                        bad_option(
                            key,
                            value,
                            format!(
                                "unknown S3 storage option; use one of `{}` or `{TRUSTED_KEY}`",
                                S3_OPTION_KEYS.join("`, `")
                            ),
                        )
                    })?;
                    builder = builder.with_config(parsed, value);
                }
            }
        }
        // Kept without credentials: it is shown in reasons and compared between roots.
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .map(|e| ferry_core::redact::url(e.trim_end_matches('/')))
            .unwrap_or_else(|| {
                let region = builder
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".into());
                format!("https://s3.{region}.amazonaws.com")
            });
        let connector = super::s3::RustlsConnector::for_endpoint(
            builder
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .as_deref(),
        );
        let store = builder
            .with_http_connector(connector)
            .with_retry(retry)
            .build()
            .map_err(|e| {
                bad_url(
                    &url,
                    format!(
                        "S3 settings are incomplete or invalid: {}",
                        ferry_core::redact::text(&e.to_string())
                    ),
                )
            })?;
        let prefix = Path::parse(prefix).map_err(|e| {
            bad_url(
                &url,
                format!("the prefix cannot be used as an object path: {e}"),
            )
        })?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            backend: Backend::S3 {
                endpoint,
                bucket: bucket.to_string(),
            },
            trusted: false,
            url,
        })
    }

    /// A root in any [`ObjectStore`] (Google Cloud Storage, Azure, a vendor's store), at
    /// `prefix` inside it. Roots whose [`Backend::Custom`] ids are equal are copied between
    /// with the destination's [`copy`](object_store::ObjectStoreExt::copy), which must not pass the bytes through
    /// this process.
    pub fn from_object_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        id: impl Into<String>,
    ) -> Result<Self> {
        let id = id.into();
        let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| {
            bad_url(
                prefix,
                format!("the prefix cannot be used as an object path: {e}"),
            )
        })?;
        Ok(Self {
            url: format!("{store}/{prefix}"),
            store,
            prefix,
            backend: Backend::Custom { id },
            trusted: false,
        })
    }

    /// Sets whether the blob data under this root is trusted: a trusted source root's data
    /// is linked without being read and hashed first. Trust only storage that nothing but
    /// the registry writes to.
    pub fn with_trusted(mut self, trusted: bool) -> Self {
        self.trusted = trusted;
        self
    }

    /// Whether this root's blob data is linked without being hashed first.
    pub fn is_trusted(&self) -> bool {
        self.trusted
    }

    /// The root as a URL (`file:///srv/registry-a`, `s3://bucket/tenant-b`), without
    /// credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend the root lives on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The root directory, for a filesystem root.
    pub fn local_path(&self) -> Option<&FsPath> {
        match &self.backend {
            Backend::Filesystem { path } => Some(path),
            _ => None,
        }
    }

    /// The object store holding the root.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The root's prefix inside [`StorageRoot::store`].
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Why the destination root `self` cannot receive blobs from `source` server-side, if it
    /// cannot.
    pub(crate) fn copy_obstacle(&self, source: &StorageRoot) -> Option<String> {
        if self.backend.can_copy_from(&source.backend) {
            return None;
        }
        Some(match (&self.backend, &source.backend) {
            (Backend::S3 { bucket: b1, .. }, Backend::S3 { bucket: b2, .. }) if b1 != b2 => {
                format!(
                    "source root `{}` and destination root `{}` are in different buckets; \
                     server-side copies are made within one bucket",
                    source.url, self.url
                )
            }
            (Backend::S3 { endpoint: e1, .. }, Backend::S3 { endpoint: e2, .. }) => format!(
                "source root `{}` (endpoint `{e2}`) and destination root `{}` (endpoint `{e1}`) \
                 are on different S3 endpoints",
                source.url, self.url
            ),
            _ => format!(
                "source root `{}` ({}) and destination root `{}` ({}) are on different kinds \
                 of storage; a blob would have to pass through this client",
                source.url,
                source.backend.kind(),
                self.url,
                self.backend.kind()
            ),
        })
    }
}
