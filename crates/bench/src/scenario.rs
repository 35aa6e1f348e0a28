//! The scenarios, their sizes, the tools each one runs and the targets ferry must meet.

use std::fmt;

/// A tool under measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    /// `ferry cp`.
    Ferry,
    /// `ferry cp --verify-uploads`: ferry hashes what it pushes, as well as the registry.
    FerryVerifying,
    /// `ferry cp --trust-source-storage`: ferry links a source layout's blobs without hashing
    /// them, to show what the verification of a layout → layout copy costs.
    FerryTrusting,
    /// `skopeo copy`.
    Skopeo,
    /// The `oci-client` crate through `oci-client-copy`.
    OciClient,
    /// The harness's minimal streaming client (`ferry-bench floor`).
    Floor,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ferry => "ferry",
            Self::FerryVerifying => "ferry --verify-uploads",
            Self::FerryTrusting => "ferry --trust-source-storage",
            Self::Skopeo => "skopeo",
            Self::OciClient => "oci-client",
            Self::Floor => "floor",
        })
    }
}

/// What is copied, from where to where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Registry repository → another repository of the same registry.
    Promotion {
        /// Whether skopeo's blob-info cache (and ferry's location cache) is primed.
        warm: bool,
    },
    /// Registry → a fresh registry.
    RegistryCopy,
    /// Layout → a fresh registry.
    LayoutToRegistry,
    /// Registry → a fresh layout.
    RegistryToLayout,
    /// Layout → a fresh layout on the same filesystem.
    LayoutToLayout,
    /// Registry → a fresh registry, one big layer.
    BigBlob,
    /// Registry → a fresh registry, an index of many images sharing a pool of blobs.
    Scale {
        /// Blobs in the shared pool.
        pool: usize,
    },
}

impl Kind {
    /// Whether a registry is involved (and so a proxy, and distant mode applies).
    pub fn uses_registry(self) -> bool {
        !matches!(self, Self::LayoutToLayout)
    }
}

/// How the tools reach the registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// HTTPS with a certificate of the harness's CA, which every tool is told to trust (HTTP/2
    /// where the tool offers it: the registry's server negotiates it by ALPN); plain HTTP
    /// otherwise.
    pub tls: bool,
    /// Added to every round trip, in milliseconds: plain HTTP waits this long before each
    /// request is forwarded; over TLS every byte towards the registry is delayed this long
    /// (so each request, each TLS handshake and each new connection costs a round trip, and
    /// flow-control windows count as they do far away).
    pub delay_ms: u64,
}

impl Network {
    /// Plain HTTP on loopback.
    pub const PLAIN: Self = Self {
        tls: false,
        delay_ms: 0,
    };
    /// Plain HTTP, 10 ms per request.
    pub const DISTANT: Self = Self {
        tls: false,
        delay_ms: 10,
    };
    /// HTTPS on loopback.
    pub const TLS: Self = Self {
        tls: true,
        delay_ms: 0,
    };
    /// HTTPS, 50 ms per round trip.
    pub const TLS_FAR: Self = Self {
        tls: true,
        delay_ms: 50,
    };
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "https" } else { "http" })?;
        if self.delay_ms > 0 {
            write!(f, ", {} ms", self.delay_ms)?;
        }
        Ok(())
    }
}

/// A goal for ferry in one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// skopeo's median wall time / ferry's ≥ this.
    WallRatio(f64),
    /// skopeo's median CPU time / ferry's ≥ this.
    CpuRatio(f64),
    /// ferry's requests ≤ N + this, N the image's blobs (config and layers), as the
    /// request-economy target counts them.
    RequestsAtMostBlobsPlus(usize),
    /// ferry's median wall time ≤ the floor's × (1 + this).
    WithinFloor(f64),
    /// ferry's peak RSS ≤ this many bytes.
    MaxRss(u64),
    /// No blob is fetched from the source more than once (ferry).
    FetchedOnce,
    /// ferry's requests at the destination registry ≤ this.
    DestinationRequestsAtMost(usize),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WallRatio(r) => write!(f, "wall skopeo/ferry ≥ {r}×"),
            Self::CpuRatio(r) => write!(f, "CPU skopeo/ferry ≥ {r}×"),
            Self::RequestsAtMostBlobsPlus(n) => {
                write!(f, "ferry requests ≤ N + {n} (N blobs: config and layers)")
            }
            Self::WithinFloor(p) => write!(f, "ferry wall ≤ floor + {:.0}%", p * 100.0),
            Self::MaxRss(b) => write!(f, "ferry peak RSS ≤ {} MiB", b >> 20),
            Self::FetchedOnce => write!(f, "each blob fetched at most once"),
            Self::DestinationRequestsAtMost(n) => {
                write!(f, "ferry requests at the destination ≤ {n}")
            }
        }
    }
}

/// Sizes of the generated content.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// Layers of the standard image.
    pub layers: usize,
    /// Bytes of each layer's file.
    pub layer_size: u64,
    /// Bytes of the big blob.
    pub big_size: u64,
    /// Images in the scale index.
    pub scale_manifests: usize,
    /// Pool sizes of the scale runs.
    pub scale_pools: Vec<usize>,
    /// Bytes of each pooled blob's file.
    pub scale_blob_size: u64,
}

impl Sizes {
    /// The sizes: 8 × 16 MiB, 1 GiB, 200 images over 250/500/1,000 blobs.
    pub fn full() -> Self {
        Self {
            layers: 8,
            layer_size: 16 << 20,
            big_size: 1 << 30,
            scale_manifests: 200,
            scale_pools: vec![250, 500, 1000],
            scale_blob_size: 16 << 10,
        }
    }

    /// The most requests the destination registry may see in the largest scale scenario:
    /// 3,000 for 200 images over 1,000 blobs (1,401 blobs and manifests with the configs and
    /// the index), in proportion for other sizes.
    pub fn scale_destination_budget(&self) -> usize {
        let pool = self.scale_pools.iter().copied().max().unwrap_or(0);
        let nodes = pool + 2 * self.scale_manifests + 1;
        nodes * 3000 / 1401
    }

    /// Small sizes for a smoke run.
    pub fn quick() -> Self {
        Self {
            layers: 4,
            layer_size: 256 << 10,
            big_size: 32 << 20,
            scale_manifests: 10,
            scale_pools: vec![20, 40],
            scale_blob_size: 1 << 10,
        }
    }
}

/// One scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name on the command line and in the table.
    pub name: String,
    /// What is copied.
    pub kind: Kind,
    /// How the registries are reached.
    pub network: Network,
    /// Tools run, in order.
    pub tools: Vec<Tool>,
    /// ferry's goals.
    pub targets: Vec<Target>,
}

impl Scenario {
    fn new(name: &str, kind: Kind, network: Network, tools: &[Tool], targets: &[Target]) -> Self {
        Self {
            name: name.into(),
            kind,
            network,
            tools: tools.to_vec(),
            targets: targets.to_vec(),
        }
    }

    /// A description of the work for the table.
    pub fn describe(&self, sizes: &Sizes) -> String {
        let image = format!("{} layers × {}", sizes.layers, human(sizes.layer_size));
        let what = match self.kind {
            Kind::Promotion { warm: true } => {
                format!("promotion in one registry, {image}, blob-info caches warm")
            }
            Kind::Promotion { warm: false } => {
                format!("promotion in one registry, {image}, skopeo's cache cold, ferry --no-cache")
            }
            Kind::RegistryCopy => format!("registry → fresh registry, {image}"),
            Kind::LayoutToRegistry => format!("layout → fresh registry, {image}"),
            Kind::RegistryToLayout => format!("registry → fresh layout, {image}"),
            Kind::LayoutToLayout => format!("layout → fresh layout, one filesystem, {image}"),
            Kind::BigBlob => format!(
                "registry → fresh registry, one {} layer",
                human(sizes.big_size)
            ),
            Kind::Scale { pool } => format!(
                "index of {} images sharing {pool} blobs of {}, registry → fresh registry",
                sizes.scale_manifests,
                human(sizes.scale_blob_size)
            ),
        };
        match (self.network.tls, self.network.delay_ms) {
            (false, 0) => what,
            (false, ms) => format!("{what}, {ms} ms per request"),
            (true, 0) => format!("{what}, over TLS"),
            (true, ms) => format!("{what}, over TLS, {ms} ms per round trip"),
        }
    }
}

/// `16 MiB`, `1 GiB`, `512 KiB`, `100 B`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20)).replace(".0 MiB", " MiB")
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0).replace(".0 KiB", " KiB")
    } else {
        format!("{bytes} B")
    }
}

/// Every scenario: plain HTTP, 10 ms away, over TLS, over TLS 50 ms away, and at scale; with
/// `all_distant`, a distant twin of each plain registry scenario that has none.
pub fn all(sizes: &Sizes, all_distant: bool) -> Vec<Scenario> {
    use Target::*;
    use Tool::*;
    let streaming = [Ferry, FerryVerifying, Skopeo, OciClient, Floor];
    let (plain, distant, tls, far) = (
        Network::PLAIN,
        Network::DISTANT,
        Network::TLS,
        Network::TLS_FAR,
    );
    let mut out = vec![
        Scenario::new(
            "promotion-warm",
            Kind::Promotion { warm: true },
            plain,
            &[Ferry, Skopeo],
            &[WallRatio(2.0), RequestsAtMostBlobsPlus(4)],
        ),
        Scenario::new(
            "promotion-cold",
            Kind::Promotion { warm: false },
            plain,
            &[Ferry, Skopeo],
            &[],
        ),
        Scenario::new(
            "promotion-distant",
            Kind::Promotion { warm: true },
            distant,
            &[Ferry, Skopeo],
            &[WallRatio(2.5), RequestsAtMostBlobsPlus(4)],
        ),
        Scenario::new(
            "registry-copy",
            Kind::RegistryCopy,
            plain,
            &streaming,
            &[WallRatio(1.0), WithinFloor(0.10), CpuRatio(2.0)],
        ),
        Scenario::new(
            "registry-copy-distant",
            Kind::RegistryCopy,
            distant,
            &streaming,
            &[WallRatio(1.3)],
        ),
        Scenario::new(
            "layout-to-registry",
            Kind::LayoutToRegistry,
            plain,
            &[Ferry, FerryVerifying, Skopeo, Floor],
            &[WallRatio(1.0), WithinFloor(0.10), CpuRatio(2.0)],
        ),
        Scenario::new(
            "registry-to-layout",
            Kind::RegistryToLayout,
            plain,
            &[Ferry, Skopeo, Floor],
            &[WallRatio(2.0), CpuRatio(4.0)],
        ),
        Scenario::new(
            "layout-to-layout",
            Kind::LayoutToLayout,
            plain,
            &[Ferry, FerryTrusting, Skopeo, Floor],
            &[WallRatio(20.0)],
        ),
        Scenario::new(
            "big-blob",
            Kind::BigBlob,
            plain,
            &streaming,
            &[WallRatio(1.0), CpuRatio(2.0), MaxRss(64 << 20)],
        ),
        Scenario::new(
            "promotion-tls",
            Kind::Promotion { warm: true },
            tls,
            &[Ferry, Skopeo],
            &[WallRatio(2.0), RequestsAtMostBlobsPlus(4)],
        ),
        Scenario::new(
            "registry-copy-tls",
            Kind::RegistryCopy,
            tls,
            &streaming,
            &[WallRatio(1.3), WithinFloor(0.10), CpuRatio(3.0)],
        ),
        Scenario::new(
            "layout-to-registry-tls",
            Kind::LayoutToRegistry,
            tls,
            &[Ferry, FerryVerifying, Skopeo, Floor],
            &[WallRatio(1.0), WithinFloor(0.10), CpuRatio(2.0)],
        ),
        Scenario::new(
            "registry-to-layout-tls",
            Kind::RegistryToLayout,
            tls,
            &[Ferry, Skopeo, Floor],
            &[WallRatio(1.5), CpuRatio(2.5)],
        ),
        Scenario::new(
            "big-blob-tls",
            Kind::BigBlob,
            tls,
            &streaming,
            &[WallRatio(1.0), CpuRatio(2.0), MaxRss(64 << 20)],
        ),
        Scenario::new(
            "promotion-tls-far",
            Kind::Promotion { warm: true },
            far,
            &[Ferry, Skopeo],
            &[WallRatio(4.0), RequestsAtMostBlobsPlus(4)],
        ),
        Scenario::new(
            "registry-copy-tls-far",
            Kind::RegistryCopy,
            far,
            &streaming,
            &[WallRatio(2.0)],
        ),
    ];
    let largest = sizes.scale_pools.iter().copied().max();
    for &pool in &sizes.scale_pools {
        // The request economy is judged where it matters most: the largest pool.
        let targets: &[Target] = if Some(pool) == largest {
            &[
                FetchedOnce,
                WallRatio(4.0),
                DestinationRequestsAtMost(sizes.scale_destination_budget()),
            ]
        } else {
            &[FetchedOnce]
        };
        out.push(Scenario::new(
            &format!("scale-{pool}"),
            Kind::Scale { pool },
            plain,
            &[Ferry, Skopeo, Floor],
            targets,
        ));
    }
    if all_distant {
        let names: Vec<String> = out.iter().map(|s| s.name.clone()).collect();
        let twins: Vec<Scenario> = out
            .iter()
            .filter(|s| s.kind.uses_registry() && s.network == plain)
            .filter(|s| !names.contains(&format!("{}-distant", s.name)))
            .map(|s| Scenario {
                name: format!("{}-distant", s.name),
                network: distant,
                targets: Vec::new(),
                ..s.clone()
            })
            .collect();
        out.extend(twins);
    }
    out
}
