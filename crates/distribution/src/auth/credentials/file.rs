//! Auth files (docker's `config.json`, the containers `auth.json`): read for a registry's
//! credential, and their `auths` rewritten atomically with every other key kept as it was.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ferry_core::{Error, Result};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Credential, normalize_key};

/// The keys of an `auths` entry that hold a secret.
const SECRET_KEYS: &[&str] = &[
    "auth",
    "username",
    "password",
    "identitytoken",
    "registrytoken",
];

/// What ferry reads of an auth file.
#[derive(Deserialize, Default)]
pub(crate) struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// Where an auth file sends a registry's credentials.
pub(crate) enum Source<'a> {
    /// A credential helper (`credHelpers` for the registry, else `credsStore`).
    Helper(&'a str),
    /// The file's own `auths`.
    Auths,
}

impl AuthFile {
    /// Reads `path`; `None` when there is no such file.
    pub(crate) async fn read(path: &Path) -> Result<Option<Self>> {
        let text = match tokio::fs::read(path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading `{}`", path.display()), e)),
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            Error::invalid(
                "auth file",
                path.display().to_string(),
                format!("not valid JSON ({e}); fix or remove the file"),
            )
        })
    }

    /// The helper the file names for `key` in `credHelpers`.
    pub(crate) fn cred_helper(&self, key: &str) -> Option<&str> {
        self.cred_helpers
            .iter()
            .find(|(k, _)| normalize_key(k) == key)
            .map(|(_, v)| v.as_str())
    }

    /// The file's `credsStore`, if it names one.
    pub(crate) fn creds_store(&self) -> Option<&str> {
        self.creds_store.as_deref().filter(|s| !s.is_empty())
    }

    /// Where new credentials for `key` go: its `credHelpers` entry, else `credsStore`, else
    /// `auths` (docker's order).
    pub(crate) fn destination(&self, key: &str) -> Source<'_> {
        match self.cred_helper(key).or(self.creds_store()) {
            Some(helper) => Source::Helper(helper),
            None => Source::Auths,
        }
    }

    /// The credential `auths` holds for `key`, if any.
    pub(crate) fn auths_credential(&self, key: &str, path: &Path) -> Result<Option<Credential>> {
        let entry = self
            .auths
            .iter()
            .find(|(k, _)| normalize_key(k) == key)
            .map(|(_, v)| v);
        match entry {
            Some(entry) => entry.credential(key, path),
            None => Ok(None),
        }
    }
}

impl AuthEntry {
    fn credential(&self, key: &str, path: &Path) -> Result<Option<Credential>> {
        if let Some(t) = self.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(t.to_string())));
        }
        if let Some(t) = self.registrytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::BearerToken(t.to_string())));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = |why: &str| {
                Error::invalid(
                    "auth file",
                    path.display().to_string(),
                    format!("the `auth` of `{key}` {why}; log in again with `ferry login {key}`"),
                )
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("is not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| bad("is not `user:password`"))?;
            return Ok(Some(Credential::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Ok(Some(Credential::Basic {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        Ok(None)
    }
}

/// A JSON value kept as it was read, or made anew.
enum Item {
    Raw(Box<RawValue>),
    Value(Value),
    Object(Entries),
}

/// A JSON object's members in their order, duplicates included.
#[derive(Default)]
struct Entries(Vec<(String, Item)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, Item::Raw(v)));
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Item::Raw(raw) => map.serialize_entry(k, raw)?,
                Item::Value(value) => map.serialize_entry(k, value)?,
                Item::Object(entries) => map.serialize_entry(k, entries)?,
            }
        }
        map.end()
    }
}

/// The `auths` members of an auth file, as [`edit_auths`] hands them to be changed.
pub(crate) struct Auths<'a> {
    entries: &'a mut Vec<(String, Item)>,
    changed: bool,
}

/// Whether an entry holds a secret.
fn holds_secret(item: &Item) -> bool {
    item_value(item)
        .as_object()
        .is_some_and(|o| SECRET_KEYS.iter().any(|k| o.contains_key(*k)))
}

impl Auths<'_> {
    /// Removes every entry for `key`; returns whether one of them held a secret.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let mut secret = false;
        self.entries.retain(|(k, item)| {
            let mine = normalize_key(k) == key;
            secret |= mine && holds_secret(item);
            self.changed |= mine;
            !mine
        });
        secret
    }

    /// Removes the secrets of every entry for `key` (a credential helper holds them now),
    /// keeping its other keys; returns whether there were any.
    pub(crate) fn strip_secrets(&mut self, key: &str) -> bool {
        let mut stripped = false;
        for (k, item) in self.entries.iter_mut() {
            if normalize_key(k) != key || !holds_secret(item) {
                continue;
            }
            let mut value = item_value(item);
            if let Some(obj) = value.as_object_mut() {
                for s in SECRET_KEYS {
                    stripped |= obj.remove(*s).is_some();
                }
            }
            *item = Item::Value(value);
        }
        self.changed |= stripped;
        stripped
    }

    /// Sets `username` and `password` for `key` as docker does (`auth`: base64 of
    /// `username:password`): in the entry already there (its other keys kept, other entries
    /// for the same registry removed), else in a new entry named `new_key`.
    pub(crate) fn set(&mut self, key: &str, new_key: &str, username: &str, password: &str) {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.changed = true;
        let position = self
            .entries
            .iter()
            .position(|(k, _)| normalize_key(k) == key);
        let mut value = match position {
            Some(i) => item_value(&self.entries[i].1),
            None => Value::Object(Default::default()),
        };
        if !value.is_object() {
            value = Value::Object(Default::default());
        }
        let obj = value.as_object_mut().expect("object");
        for s in SECRET_KEYS {
            obj.remove(*s);
        }
        obj.insert("auth".into(), Value::String(encoded));
        match position {
            Some(i) => {
                let kept = self.entries[i].0.clone();
                self.entries.retain(|(k, _)| normalize_key(k) != key);
                self.entries
                    .insert(i.min(self.entries.len()), (kept, Item::Value(value)));
            }
            None => self.entries.push((new_key.to_string(), Item::Value(value))),
        }
    }
}

fn item_value(item: &Item) -> Value {
    match item {
        Item::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        Item::Value(v) => v.clone(),
        Item::Object(e) => serde_json::to_value(e).unwrap_or(Value::Null),
    }
}

/// Applies `edit` to the `auths` of the file at `path` (created, with its directory, when
/// missing), returning what it returns, and, when it changed something, writes the file anew: to a temporary file beside
/// it, mode 0600, then renamed over it, so a reader sees the old file or the new one and never
/// a part. Every other key, and every other `auths` entry, is written as it was read. A
/// symbolic link is followed, so the file it names is replaced and the link kept.
pub(crate) fn edit_auths<R>(path: &Path, edit: impl FnOnce(&mut Auths<'_>) -> R) -> Result<R> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let invalid = |reason: String| Error::invalid("auth file", path.display().to_string(), reason);
    let mut doc = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Entries::default(),
        Ok(bytes) => serde_json::from_slice::<Entries>(&bytes)
            .map_err(|e| invalid(format!("not a JSON object ({e}); fix or remove the file")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Entries::default(),
        Err(e) => return Err(Error::io(format!("reading `{}`", path.display()), e)),
    };
    let position = doc.0.iter().position(|(k, _)| k == "auths");
    let mut auths = match position.map(|i| &doc.0[i].1) {
        Some(Item::Raw(raw)) if raw.get().trim() == "null" => Entries::default(),
        Some(Item::Raw(raw)) => serde_json::from_str::<Entries>(raw.get())
            .map_err(|e| invalid(format!("`auths` is not a JSON object ({e})")))?,
        _ => Entries::default(),
    };
    let mut edited = Auths {
        entries: &mut auths.0,
        changed: false,
    };
    let result = edit(&mut edited);
    if !edited.changed {
        return Ok(result);
    }
    match position {
        Some(i) => doc.0[i].1 = Item::Object(auths),
        None => doc.0.insert(0, ("auths".into(), Item::Object(auths))),
    }
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    doc.serialize(&mut serializer)
        .map_err(|e| invalid(format!("cannot be written: {e}")))?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes)?;
    Ok(result)
}

/// Writes `bytes` to `path` through a temporary file in its directory (mode 0600) renamed
/// over it; the directory is created (mode 0700) when missing.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |what: &str, e: std::io::Error| Error::io(format!("{what} `{}`", path.display()), e);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io("creating the directory of", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth.json".into());
    // tempfile creates the file with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| io("creating a temporary file beside", e))?;
    tmp.write_all(bytes).map_err(|e| io("writing", e))?;
    tmp.as_file().sync_all().map_err(|e| io("writing", e))?;
    tmp.persist(path).map_err(|e| io("replacing", e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
