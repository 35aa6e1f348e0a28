//! Reading metrics as Prometheus does: a `/metrics` scrape parsed by the `openmetrics-parser`
//! crate (which refuses what the OpenMetrics specification refuses), and node_exporter's
//! textfile collector (Debian `prometheus-node-exporter`), which reads the Prometheus text
//! format 0.0.4 as Prometheus's own parser does.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use openmetrics_parser::{
    MetricsExposition, OpenMetricsType, OpenMetricsValue, PrometheusType, PrometheusValue,
};

use crate::error::{Error, Result};

/// A parsed OpenMetrics exposition.
pub struct Scrape {
    /// The text as served.
    pub text: String,
    parsed: MetricsExposition<OpenMetricsType, OpenMetricsValue>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `text` as OpenMetrics.
pub fn parse_openmetrics(text: &str) -> Result<Scrape> {
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(text)
        .map_err(|e| Error::Setup(format!("not OpenMetrics: {e:?}\n{text}")))?;
    Ok(Scrape {
        text: text.to_string(),
        parsed,
    })
}

/// `GET url` (a `/metrics` endpoint) asking for OpenMetrics, parsed.
pub async fn scrape(url: &str) -> Result<Scrape> {
    let answer = crate::http(
        "GET",
        url,
        &[("accept", "application/openmetrics-text; version=1.0.0")],
        Vec::new(),
    )
    .await?;
    if answer.status != 200 {
        return Err(Error::Setup(format!(
            "{url} answered {}: {}",
            answer.status,
            answer.text()
        )));
    }
    parse_openmetrics(&answer.text())
}

impl Scrape {
    /// The type of family `name` (`counter`, `gauge`, `histogram`, …), if it is there.
    pub fn kind(&self, name: &str) -> Option<String> {
        self.parsed
            .families
            .get(name)
            .map(|f| format!("{:?}", f.family_type).to_lowercase())
    }

    /// The label sets of family `name`'s samples.
    pub fn label_sets(&self, name: &str) -> Vec<Vec<(String, String)>> {
        let Some(family) = self.parsed.families.get(name) else {
            return Vec::new();
        };
        let names = family.get_label_names().to_vec();
        family
            .iter_samples()
            .map(|s| {
                names
                    .iter()
                    .filter_map(|n| {
                        Some((
                            n.clone(),
                            s.get_labelset().ok()?.get_label_value(n)?.to_string(),
                        ))
                    })
                    .collect()
            })
            .collect()
    }

    /// The sum over family `name`'s samples whose labels include `labels`: a counter's
    /// total, a gauge's value, a histogram's count. `None` when no sample matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = self.parsed.families.get(name)?;
        let mut found = None;
        for sample in family.iter_samples() {
            let set = sample.get_labelset().ok()?;
            if !labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
            {
                continue;
            }
            let v = match &sample.value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
                OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                _ => continue,
            };
            *found.get_or_insert(0.0) += v;
        }
        found
    }
}

/// A node_exporter with only its textfile collector on, reading `*.prom` in a directory.
pub struct NodeExporter {
    child: Child,
    addr: String,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The node_exporter program, if installed.
pub fn node_exporter_program() -> Option<&'static str> {
    ["prometheus-node-exporter", "node_exporter"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

impl NodeExporter {
    /// Starts node_exporter on a free loopback port, reading the textfiles of `dir`.
    pub async fn start(program: &str, dir: &Path) -> Result<Self> {
        let port = crate::free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(program)
            .args([
                "--collector.disable-defaults",
                "--collector.textfile",
                &format!("--collector.textfile.directory={}", dir.display()),
                &format!("--web.listen-address={addr}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(format!("starting `{program}`"), e))?;
        let exporter = Self { child, addr };
        let url = exporter.url();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if crate::http("GET", &url, &[], Vec::new()).await.is_ok() {
                return Ok(exporter);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Startup {
                    program: program.into(),
                    reason: format!("{url} did not answer within 20 s"),
                    log: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its `/metrics` URL.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// What it serves now, in the text format 0.0.4 (it answers a plain `GET` so), parsed.
    pub async fn scrape(&self) -> Result<Exported> {
        let answer = crate::http("GET", &self.url(), &[], Vec::new()).await?;
        parse_text_format(&answer.text())
    }
}

/// Parses `text` as the Prometheus text format 0.0.4.
pub fn parse_text_format(text: &str) -> Result<Exported> {
    let parsed = openmetrics_parser::prometheus::parse_prometheus(text)
        .map_err(|e| Error::Setup(format!("not the text format 0.0.4: {e:?}\n{text}")))?;
    Ok(Exported {
        text: text.to_string(),
        parsed,
    })
}

/// What node_exporter exports (or a textfile holds), parsed.
pub struct Exported {
    /// The text as served.
    pub text: String,
    parsed: MetricsExposition<PrometheusType, PrometheusValue>,
}

impl Exported {
    /// The type node_exporter gives family `name` (`counter`, `untyped`, …).
    pub fn kind(&self, name: &str) -> Option<String> {
        self.parsed
            .families
            .get(name)
            .map(|f| f.family_type.to_string())
    }

    /// The sum of the values of family `name`'s samples whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = self.parsed.families.get(name)?;
        let mut found = None;
        for sample in family.iter_samples() {
            let set = sample.get_labelset().ok()?;
            if !labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
            {
                continue;
            }
            let v = match &sample.value {
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                _ => continue,
            };
            *found.get_or_insert(0.0) += v;
        }
        found
    }
}
