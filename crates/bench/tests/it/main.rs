//! Runs the harness in `--quick` mode on cheap scenarios against real registries and checks
//! the report it writes.

use std::process::Command;

/// The report's row of `tool` in `scenario`, split into cells.
fn row(report: &str, scenario: &str, tool: &str) -> Vec<String> {
    report
        .lines()
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.len() == 9 && cells[0] == scenario && cells[1] == tool)
        .unwrap_or_else(|| panic!("no row for {tool} in {scenario}:\n{report}"))
}

fn seconds(cell: &str) -> f64 {
    cell.strip_suffix(" s")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("`{cell}` is not a time in seconds"))
}

#[test]
fn quick_run_reports_every_tool_with_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-bench"))
        .args([
            "--quick",
            "--reps",
            "1",
            "--scenario",
            "layout-to-layout,promotion-warm,registry-copy",
            "--out",
        ])
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ferry-bench failed:\n{stdout}\n{stderr}"
    );
    let report = std::fs::read_to_string(&out).unwrap();
    for (scenario, tools) in [
        ("layout-to-layout", &["ferry", "skopeo"][..]),
        ("promotion-warm", &["ferry", "skopeo"][..]),
        (
            "registry-copy",
            &[
                "ferry",
                "ferry --verify-uploads",
                "skopeo",
                "oci-client",
                "floor",
            ][..],
        ),
    ] {
        for tool in tools {
            let cells = row(&report, scenario, tool);
            assert!(
                seconds(&cells[2]) > 0.0,
                "wall time of {tool} in {scenario}"
            );
            seconds(&cells[3]);
            assert!(cells[4].ends_with(" MiB"), "peak RSS of {tool}: {cells:?}");
            assert!(
                cells[6].ends_with('B'),
                "uploaded bytes of {tool}: {cells:?}"
            );
        }
    }
    // Every streaming tool uploads the whole image, and the registries saw their requests.
    let uploaded = row(&report, "registry-copy", "ferry")[6].clone();
    for tool in ["ferry --verify-uploads", "skopeo", "oci-client", "floor"] {
        assert_eq!(row(&report, "registry-copy", tool)[6], uploaded, "{tool}");
    }
    for tool in [
        "ferry",
        "ferry --verify-uploads",
        "skopeo",
        "oci-client",
        "floor",
    ] {
        let requests: usize = row(&report, "registry-copy", tool)[5]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(requests > 5, "{tool} made {requests} requests");
    }
    // A promotion mounts: ferry uploads no blob byte.
    assert_eq!(row(&report, "promotion-warm", "ferry")[6], "0 B");
    // The report names its targets, the machine and the versions.
    assert!(
        report.contains("| promotion-warm | wall skopeo/ferry ≥ 2×"),
        "{report}"
    );
    assert!(
        report.contains("## Machine") && report.contains("skopeo version"),
        "{report}"
    );
    assert!(
        report.contains("cargo run --release -p ferry-bench --"),
        "{report}"
    );
}
