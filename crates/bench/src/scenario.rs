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
    /// `ferry cp` with every blob uploaded in chunks (`FERRY_CHUNK_THRESHOLD=1`), the path
    /// of blobs above the chunk threshold: its wall time and memory at the huge blob's size.
    FerryChunked,
    /// `crane copy`, `crane pull --format oci`, `crane push` (go-containerregistry).
    Crane,
    /// `regctl image copy` (regclient).
    Regctl,
    /// `oras cp`.
    Oras,
    /// `skopeo copy`.
    Skopeo,
    /// The `oci-client` crate through `oci-client-copy`.
    OciClient,
    /// The harness's minimal streaming client (`ferry-bench floor`).
    Floor,
}

impl Tool {
    /// The tools users choose between: the headline compares ferry with the fastest of them.
    pub const PEERS: [Tool; 4] = [Tool::Crane, Tool::Regctl, Tool::Oras, Tool::Skopeo];

    /// Whether this is one of [`Tool::PEERS`].
    pub fn is_peer(self) -> bool {
        Self::PEERS.contains(&self)
    }

    /// The binary's name in the peers' directory, for the tools found there.
    pub fn peer_binary(self) -> Option<&'static str> {
        match self {
            Self::Crane => Some("crane"),
            Self::Regctl => Some("regctl"),
            Self::Oras => Some("oras"),
            _ => None,
        }
    }

    /// Why this tool cannot do `kind`'s work, when it cannot.
    pub fn cannot(self, kind: Kind) -> Option<&'static str> {
        match (self, kind) {
            (Self::Crane, Kind::LayoutToLayout) => {
                Some("crane copies between registries and from or to a layout, not layout → layout")
            }
            _ => None,
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ferry => "ferry",
            Self::FerryVerifying => "ferry --verify-uploads",
            Self::FerryTrusting => "ferry --trust-source-storage",
            Self::FerryChunked => "ferry, chunked",
            Self::Crane => "crane",
            Self::Regctl => "regctl",
            Self::Oras => "oras",
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
    /// Registry → a fresh registry, one big layer of this many bytes.
    BigBlob {
        /// The layer's bytes.
        size: u64,
    },
    /// Registry → a fresh layout, one big layer of this many bytes.
    BigBlobToLayout {
        /// The layer's bytes.
        size: u64,
    },
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

    /// Whether one run takes seconds (a big blob, a scale index), so fewer runs are made.
    pub fn is_long(self) -> bool {
        matches!(
            self,
            Self::BigBlob { .. } | Self::BigBlobToLayout { .. } | Self::Scale { .. }
        )
    }

    /// Whether the destination is a layout.
    pub fn writes_layout(self) -> bool {
        matches!(
            self,
            Self::RegistryToLayout | Self::LayoutToLayout | Self::BigBlobToLayout { .. }
        )
    }

    /// Whether the source is a layout.
    pub fn reads_layout(self) -> bool {
        matches!(self, Self::LayoutToRegistry | Self::LayoutToLayout)
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
    /// Bytes per second each connection may carry from the source registry to the tool, as a
    /// CDN or a long path caps one stream; `None`: as fast as loopback goes. Only the source
    /// is capped: the destination is a registry on loopback.
    pub cap: Option<u64>,
}

impl Network {
    /// Plain HTTP on loopback.
    pub const PLAIN: Self = Self {
        tls: false,
        delay_ms: 0,
        cap: None,
    };
    /// Plain HTTP, 10 ms per request.
    pub const DISTANT: Self = Self {
        tls: false,
        delay_ms: 10,
        cap: None,
    };
    /// Plain HTTP from a source 20 ms per request away whose every connection carries at most
    /// 16 MB/s.
    pub const CAPPED: Self = Self {
        tls: false,
        delay_ms: 20,
        cap: Some(16_000_000),
    };
    /// HTTPS on loopback.
    pub const TLS: Self = Self {
        tls: true,
        delay_ms: 0,
        cap: None,
    };
    /// HTTPS, 50 ms per round trip.
    pub const TLS_FAR: Self = Self {
        tls: true,
        delay_ms: 50,
        cap: None,
    };

    /// How a run's destination registry is reached: the same, except that a capped source's
    /// destination is on loopback.
    pub fn destination(self) -> Self {
        if self.cap.is_some() {
            Self {
                delay_ms: 0,
                cap: None,
                ..self
            }
        } else {
            self
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "https" } else { "http" })?;
        if self.delay_ms > 0 {
            write!(f, ", {} ms", self.delay_ms)?;
        }
        if let Some(cap) = self.cap {
            write!(f, ", {} MB/s per connection", cap / 1_000_000)?;
        }
        Ok(())
    }
}

/// A goal for ferry in one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The fastest peer's median wall time ÷ ferry's ≥ this (the peers: crane, regctl, oras,
    /// skopeo).
    PeerWallRatio(f64),
    /// In every repetition, the fastest peer's wall time in that repetition ÷ ferry's ≥ this.
    PeerWallRatioEveryRun(f64),
    /// skopeo's median wall time / ferry's ≥ this.
    SkopeoWallRatio(f64),
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
            Self::PeerWallRatio(r) => write!(f, "wall fastest peer/ferry ≥ {r}×"),
            Self::PeerWallRatioEveryRun(r) => {
                write!(f, "wall fastest peer/ferry ≥ {r}× in every repetition")
            }
            Self::SkopeoWallRatio(r) => write!(f, "wall skopeo/ferry ≥ {r}×"),
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
    /// Bytes of the huge blob (peak memory at any size).
    pub huge_size: u64,
    /// Bytes of the blob pulled over capped connections.
    pub capped_size: u64,
    /// Images in the scale index.
    pub scale_manifests: usize,
    /// Pool sizes of the scale runs.
    pub scale_pools: Vec<usize>,
    /// Bytes of each pooled blob's file.
    pub scale_blob_size: u64,
}

impl Sizes {
    /// The full sizes: 8 × 16 MiB, 1 GiB, 4 GiB, 256 MiB over capped connections, 200 images
    /// over 250/500/1,000 blobs.
    pub fn full() -> Self {
        Self {
            layers: 8,
            layer_size: 16 << 20,
            big_size: 1 << 30,
            huge_size: 4 << 30,
            capped_size: 256 << 20,
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
            huge_size: 96 << 20,
            capped_size: 80 << 20,
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
            Kind::BigBlob { size } => {
                format!("registry → fresh registry, one {} layer", human(size))
            }
            Kind::BigBlobToLayout { size } => {
                format!("registry → fresh layout, one {} layer", human(size))
            }
            Kind::Scale { pool } => format!(
                "index of {} images sharing {pool} blobs of {}, registry → fresh registry",
                sizes.scale_manifests,
                human(sizes.scale_blob_size)
            ),
        };
        let n = self.network;
        match (n.tls, n.delay_ms, n.cap) {
            (false, 0, _) => what,
            (false, ms, Some(cap)) => format!(
                "{what}, the source {ms} ms per request away and each of its connections capped \
                 at {} MB/s (one stream: {:.1} s at least)",
                cap / 1_000_000,
                blob_bytes(self.kind, sizes) as f64 / cap as f64
            ),
            (false, ms, None) => format!("{what}, {ms} ms per request"),
            (true, 0, _) => format!("{what}, over TLS"),
            (true, ms, _) => format!("{what}, over TLS, {ms} ms per round trip"),
        }
    }
}

/// The bytes of the one big layer of `kind`, or of its standard image.
fn blob_bytes(kind: Kind, sizes: &Sizes) -> u64 {
    match kind {
        Kind::BigBlob { size } | Kind::BigBlobToLayout { size } => size,
        _ => sizes.layers as u64 * sizes.layer_size,
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

/// Every scenario: plain HTTP, 10 ms away, over TLS, over TLS 50 ms away, over capped
/// connections, and at scale; with `all_distant`, a distant twin of each plain registry
/// scenario that has none. Every scenario runs ferry beside crane, regctl, oras and skopeo
/// (the peers) and, where it streams, the floor.
pub fn all(sizes: &Sizes, all_distant: bool) -> Vec<Scenario> {
    use Target::*;
    use Tool::*;
    let peers = [Crane, Regctl, Oras, Skopeo];
    let with = |mine: &[Tool], extra: &[Tool]| -> Vec<Tool> {
        mine.iter().chain(&peers).chain(extra).copied().collect()
    };
    let promotion = with(&[Ferry], &[]);
    let streaming = with(&[Ferry, FerryVerifying], &[OciClient, Floor]);
    let to_registry = with(&[Ferry, FerryVerifying], &[Floor]);
    let to_layout = with(&[Ferry], &[Floor]);
    let layouts = with(&[Ferry, FerryTrusting], &[Floor]);
    let big = with(&[Ferry], &[Floor]);
    let huge = with(&[Ferry, FerryChunked], &[Floor]);
    let (plain, distant, tls, far, capped) = (
        Network::PLAIN,
        Network::DISTANT,
        Network::TLS,
        Network::TLS_FAR,
        Network::CAPPED,
    );
    let (big_size, huge_size, capped_size) = (sizes.big_size, sizes.huge_size, sizes.capped_size);
    let s = Scenario::new;
    let mut out = vec![
        s(
            "promotion-warm",
            Kind::Promotion { warm: true },
            plain,
            &promotion,
            &[
                PeerWallRatio(1.0),
                SkopeoWallRatio(2.0),
                RequestsAtMostBlobsPlus(4),
            ],
        ),
        s(
            "promotion-cold",
            Kind::Promotion { warm: false },
            plain,
            &promotion,
            &[PeerWallRatio(1.0)],
        ),
        s(
            "promotion-distant",
            Kind::Promotion { warm: true },
            distant,
            &promotion,
            &[
                PeerWallRatio(1.0),
                SkopeoWallRatio(2.5),
                RequestsAtMostBlobsPlus(4),
            ],
        ),
        s(
            "registry-copy",
            Kind::RegistryCopy,
            plain,
            &streaming,
            &[PeerWallRatio(1.0), WithinFloor(0.10), CpuRatio(2.0)],
        ),
        s(
            "registry-copy-distant",
            Kind::RegistryCopy,
            distant,
            &streaming,
            &[PeerWallRatio(1.0), SkopeoWallRatio(1.3)],
        ),
        s(
            "layout-to-registry",
            Kind::LayoutToRegistry,
            plain,
            &to_registry,
            &[PeerWallRatio(1.0), WithinFloor(0.10), CpuRatio(2.0)],
        ),
        s(
            "registry-to-layout",
            Kind::RegistryToLayout,
            plain,
            &to_layout,
            &[PeerWallRatio(1.0), SkopeoWallRatio(2.0), CpuRatio(4.0)],
        ),
        s(
            "layout-to-layout",
            Kind::LayoutToLayout,
            plain,
            &layouts,
            &[PeerWallRatio(1.0), SkopeoWallRatio(20.0)],
        ),
        s(
            "big-blob",
            Kind::BigBlob { size: big_size },
            plain,
            &big,
            &[
                PeerWallRatioEveryRun(1.0),
                WithinFloor(0.05),
                CpuRatio(2.0),
                MaxRss(64 << 20),
            ],
        ),
        s(
            "huge-blob",
            Kind::BigBlob { size: huge_size },
            plain,
            &huge,
            &[
                PeerWallRatioEveryRun(1.0),
                WithinFloor(0.05),
                MaxRss(64 << 20),
            ],
        ),
        s(
            "capped-to-layout",
            Kind::BigBlobToLayout { size: capped_size },
            capped,
            &big,
            &[PeerWallRatio(2.5), MaxRss(64 << 20)],
        ),
        s(
            "capped-copy",
            Kind::BigBlob { size: capped_size },
            capped,
            &big,
            &[PeerWallRatio(2.5), MaxRss(64 << 20)],
        ),
        s(
            "promotion-tls",
            Kind::Promotion { warm: true },
            tls,
            &promotion,
            &[
                PeerWallRatio(1.0),
                SkopeoWallRatio(2.0),
                RequestsAtMostBlobsPlus(4),
            ],
        ),
        s(
            "registry-copy-tls",
            Kind::RegistryCopy,
            tls,
            &streaming,
            &[PeerWallRatio(1.0), WithinFloor(0.10), CpuRatio(3.0)],
        ),
        s(
            "layout-to-registry-tls",
            Kind::LayoutToRegistry,
            tls,
            &to_registry,
            &[PeerWallRatio(1.0), WithinFloor(0.10), CpuRatio(2.0)],
        ),
        s(
            "registry-to-layout-tls",
            Kind::RegistryToLayout,
            tls,
            &to_layout,
            &[PeerWallRatio(1.0), CpuRatio(2.5)],
        ),
        s(
            "big-blob-tls",
            Kind::BigBlob { size: big_size },
            tls,
            &big,
            &[PeerWallRatio(1.3), CpuRatio(2.0), MaxRss(64 << 20)],
        ),
        s(
            "huge-blob-tls",
            Kind::BigBlob { size: huge_size },
            tls,
            &huge,
            &[PeerWallRatio(1.3), MaxRss(64 << 20)],
        ),
        s(
            "promotion-tls-far",
            Kind::Promotion { warm: true },
            far,
            &promotion,
            &[
                PeerWallRatio(1.0),
                SkopeoWallRatio(4.0),
                RequestsAtMostBlobsPlus(4),
            ],
        ),
        s(
            "registry-copy-tls-far",
            Kind::RegistryCopy,
            far,
            &streaming,
            &[PeerWallRatio(1.0), SkopeoWallRatio(2.0)],
        ),
    ];
    let largest = sizes.scale_pools.iter().copied().max();
    for &pool in &sizes.scale_pools {
        // The request economy is judged where it matters most: the largest pool.
        let targets: &[Target] = if Some(pool) == largest {
            &[
                FetchedOnce,
                PeerWallRatio(1.0),
                SkopeoWallRatio(4.0),
                DestinationRequestsAtMost(sizes.scale_destination_budget()),
            ]
        } else {
            &[FetchedOnce, PeerWallRatio(1.0)]
        };
        out.push(s(
            &format!("scale-{pool}"),
            Kind::Scale { pool },
            plain,
            &big,
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
