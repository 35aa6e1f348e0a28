//! node_exporter's textfile collector: the Prometheus text format 0.0.4, written atomically.
//!
//! The `prometheus-client` crate writes OpenMetrics. node_exporter's parser (0.0.4) reads it,
//! treating `# UNIT` and `# EOF` as comments, but a counter family is announced without its
//! `_total` suffix (`# TYPE x counter`) while its samples carry it (`x_total`), so the parser
//! sees samples of no announced family and exports them untyped. Announcing each counter
//! under its samples' name keeps it a counter.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// `openmetrics` (as [`crate::Metrics::encode`] writes it) in the text format 0.0.4: counter
/// families named as their samples (`_total`), no `# UNIT` or `# EOF` lines.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Writes `text` to `path` by way of a file beside it (not named `*.prom`, so the collector
/// never reads it), renamed over `path` once written and flushed.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".ferry-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    // Readable by node_exporter, which may run as another user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
