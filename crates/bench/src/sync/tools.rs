//! The command line of each tool for a sync, and the check of what it left.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;

use super::{Bench, Corpus, Tool};
use crate::proxy::ProxiedRegistry;
use crate::runner::skopeo_with_cache;

/// Images regsync copies at once (its `defaults.parallel`, 1 unless set): ferry's default
/// number of images in flight, so that the two run with the same width.
pub(super) const REGSYNC_PARALLEL: usize = 8;

/// ocync's transfer cache (`global.cache_dir`) under the scenario's caches.
pub(super) fn ocync_cache(caches: &Path) -> PathBuf {
    caches.join("ocync-sync").join("ocync-cache")
}

impl Bench {
    pub(super) fn command(
        &self,
        tool: Tool,
        src: &ProxiedRegistry,
        target: &Dest,
        caches: &Path,
        corpus: &Corpus,
    ) -> Result<Command> {
        let cache = caches.join(tool.to_string().replace(' ', "-"));
        std::fs::create_dir_all(&cache)?;
        let p = &self.programs;
        Ok(match tool {
            Tool::Ferry => {
                let mut c = Command::new(&p.ferry);
                c.args(["sync", "--plain-http", "-q"]);
                match target {
                    // The repositories listed, one `[[sync]]` entry each, as regsync and ocync
                    // are given them (a prefix would list the catalog first: one request more).
                    Dest::Registry(addr) => {
                        let mut toml = String::new();
                        for repo in corpus.repos() {
                            let _ = writeln!(
                                toml,
                                "[[sync]]\nsource = \"{}/team/{repo}\"\n\
                                 destination = \"{addr}/mirror/{repo}\"\n",
                                src.addr()
                            );
                        }
                        let file = cache.join("mirror.toml");
                        std::fs::write(&file, toml)?;
                        c.arg("--file").arg(&file);
                    }
                    // Every repository under the prefix, into a layout each.
                    Dest::Dir(dir) => {
                        c.args([
                            format!("{}/team/", src.addr()),
                            format!("oci-dir:{}/", dir.display()),
                        ]);
                    }
                }
                c.env("XDG_CACHE_HOME", &cache);
                c
            }
            Tool::Skopeo => {
                // skopeo syncs the repositories a YAML file lists, every tag of each.
                let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", src.addr());
                for repo in corpus.repos() {
                    let _ = writeln!(yaml, "    team/{repo}: []");
                }
                let file = cache.join("sync.yaml");
                std::fs::write(&file, yaml)?;
                let mut args: Vec<String> = vec![
                    "--insecure-policy".into(),
                    "sync".into(),
                    "--all".into(),
                    "--preserve-digests".into(),
                    "--src".into(),
                    "yaml".into(),
                ];
                match target {
                    Dest::Registry(addr) => {
                        args.extend([
                            "--dest".into(),
                            "docker".into(),
                            "--dest-tls-verify=false".into(),
                            file.display().to_string(),
                            format!("{addr}/mirror"),
                        ]);
                    }
                    Dest::Dir(dir) => {
                        args.extend([
                            "--dest".into(),
                            "dir".into(),
                            file.display().to_string(),
                            dir.display().to_string(),
                        ]);
                    }
                }
                skopeo_with_cache(&p.skopeo, &cache, &args)
            }
            Tool::Ocync => {
                let Dest::Registry(addr) = target else {
                    bail!("ocync syncs between registries only");
                };
                // Plain HTTP needs the `http://` URL and a static token (its default auth
                // probes HTTPS); referrers are left out as `ferry sync` does without `-r`.
                let mut yaml = format!(
                    "global:\n  cache_dir: {}\nregistries:\n  \
                     src: {{url: \"http://{}\", auth_type: static_token, token: unused}}\n  \
                     dst: {{url: \"http://{addr}\", auth_type: static_token, token: unused}}\n\
                     defaults:\n  source: src\n  targets: dst\n  artifacts: {{enabled: false}}\n  \
                     tags: {{glob: \"*\", include: [\"*\"]}}\nmappings:\n",
                    serde_json::to_string(&ocync_cache(caches).display().to_string())?,
                    src.addr(),
                );
                for repo in corpus.repos() {
                    let _ = writeln!(yaml, "  - {{from: team/{repo}, to: mirror/{repo}}}");
                }
                let file = cache.join("ocync.yaml");
                std::fs::write(&file, yaml)?;
                let mut c = Command::new(self.ocync.as_ref().context("ocync is not found")?);
                // Not `-q`: with it, a failed run prints nothing to say why.
                c.args(["sync", "-c"]).arg(&file);
                c
            }
            Tool::Regsync => {
                // One `repository` entry per repository: every tag of each.
                let mut yaml = format!(
                    "version: 1\ncreds:\n  - registry: {}\n    tls: disabled\n",
                    src.addr()
                );
                let to = |repo: &str| match target {
                    Dest::Registry(addr) => format!("{addr}/mirror/{repo}"),
                    Dest::Dir(dir) => format!("ocidir://{}/{repo}", dir.display()),
                };
                if let Dest::Registry(addr) = target {
                    let _ = writeln!(yaml, "  - registry: {addr}\n    tls: disabled");
                }
                let _ = writeln!(yaml, "defaults:\n  parallel: {REGSYNC_PARALLEL}\nsync:");
                for repo in corpus.repos() {
                    let _ = writeln!(
                        yaml,
                        "  - source: {}/team/{repo}\n    target: {}\n    type: repository",
                        src.addr(),
                        to(repo)
                    );
                }
                let file = cache.join("regsync.yml");
                std::fs::write(&file, yaml)?;
                // Its own HOME: no settings or credentials of this machine's user.
                let home = cache.join("home");
                std::fs::create_dir_all(&home)?;
                let mut c = Command::new(self.regsync.as_ref().context("regsync is not found")?);
                c.args(["once", "-v", "warn", "-c"]).arg(&file);
                c.env("HOME", &home);
                c
            }
            Tool::Floor => {
                let Dest::Registry(addr) = target else {
                    bail!("the sync floor compares registries only");
                };
                let mut c = Command::new(&p.bench);
                // Given the repositories, as ferry, regsync and ocync are.
                let repos: Vec<&str> = corpus.repos().into_iter().collect();
                c.args([
                    "sync-floor".to_string(),
                    format!("{}/team/", src.addr()),
                    format!("{addr}/mirror/"),
                    format!("--repos={}", repos.join(",")),
                ]);
                c
            }
        })
    }

    /// Checks that every image of the corpus is at the destination under its tag.
    pub(super) fn check(&self, tool: Tool, target: &Dest, corpus: &Corpus) -> Result<()> {
        for (repo, tag, image) in &corpus.images {
            let want = image.manifest.digest().to_string();
            let found = match target {
                Dest::Registry(addr) => {
                    // skopeo places `team/rNN` under `mirror/` as its last component; ferry,
                    // ocync and regsync as `mirror/rNN`.
                    let candidates = [format!("mirror/{repo}"), format!("mirror/team/{repo}")];
                    let mut found = String::new();
                    for name in candidates {
                        let url = format!("http://{addr}/v2/{name}/manifests/{tag}");
                        let answer = self.rt.block_on(ferry_test_support::http(
                            "HEAD",
                            &url,
                            &[("accept", crate::floor::MANIFEST_ACCEPT)],
                            Bytes::new(),
                        ))?;
                        if answer.status == 200 {
                            found = answer
                                .header("docker-content-digest")
                                .unwrap_or_default()
                                .to_string();
                            break;
                        }
                    }
                    found
                }
                Dest::Dir(dir) => match tool {
                    Tool::Floor => bail!("the sync floor compares registries only"),
                    Tool::Ocync => bail!("ocync syncs between registries only"),
                    Tool::Ferry | Tool::Regsync => {
                        let index: serde_json::Value = serde_json::from_slice(&std::fs::read(
                            dir.join(repo).join("index.json"),
                        )?)?;
                        index["manifests"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|m| {
                                m["annotations"]["org.opencontainers.image.ref.name"]
                                    == tag.as_str()
                            })
                            .and_then(|m| m["digest"].as_str())
                            .unwrap_or_default()
                            .to_string()
                    }
                    Tool::Skopeo => {
                        let candidates = [
                            dir.join(format!("{repo}:{tag}")),
                            dir.join("team").join(format!("{repo}:{tag}")),
                        ];
                        let path = candidates
                            .iter()
                            .find(|p| p.exists())
                            .with_context(|| format!("no `{repo}:{tag}` in {}", dir.display()))?;
                        let bytes = std::fs::read(path.join("manifest.json"))?;
                        format!("sha256:{}", hex(&sha256(&bytes)))
                    }
                },
            };
            if found != want {
                bail!("`{repo}:{tag}` is `{found}`, not `{want}`");
            }
        }
        Ok(())
    }
}

/// Where a run writes.
pub(super) enum Dest {
    Registry(String),
    Dir(PathBuf),
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
