//! Runs the harness in `--quick` mode on cheap scenarios against real registries and checks
//! the report it writes.

use std::process::Command;

/// Runs `ferry-bench ARGS --out OUT --work-dir DIR/work`, which must succeed; returns the
/// report file and what it wrote on stderr.
fn bench(args: &[&str], out: &std::path::Path, dir: &std::path::Path) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-bench"))
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "ferry-bench {} failed:\n{}\n{stderr}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout)
    );
    (std::fs::read_to_string(out).unwrap(), stderr)
}

/// A table line split into its trimmed cells.
fn cells(line: &str) -> Vec<String> {
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// The report's row of `tool` in `scenario`, split into cells: scenario, transport, tool,
/// wall, CPU, peak RSS, requests, at destination, connections, uploaded, and the ratios.
fn row(report: &str, scenario: &str, tool: &str) -> Vec<String> {
    report
        .lines()
        .map(cells)
        .find(|cells| cells.len() == 12 && cells[0] == scenario && cells[2] == tool)
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
    // The report goes between its markers; what is written around them by hand stays.
    std::fs::write(
        &out,
        "<!-- ferry-bench: begin -->\nan older run\n<!-- ferry-bench: end -->\n\n## Kept by hand\n",
    )
    .unwrap();
    let (report, _) = bench(
        &[
            "--quick",
            "--reps",
            "1",
            "--scenario",
            "layout-to-layout,promotion-warm,registry-copy,registry-copy-tls,promotion-tls-far",
        ],
        &out,
        dir.path(),
    );
    assert!(report.ends_with("## Kept by hand\n"), "{report}");
    assert!(!report.contains("an older run"), "{report}");
    let streaming = [
        "ferry",
        "ferry --verify-uploads",
        "skopeo",
        "oci-client",
        "floor",
    ];
    for (scenario, tools) in [
        (
            "layout-to-layout",
            &["ferry", "ferry --trust-source-storage", "skopeo"][..],
        ),
        ("promotion-warm", &["ferry", "skopeo"][..]),
        ("registry-copy", &streaming[..]),
        ("registry-copy-tls", &streaming[..]),
        ("promotion-tls-far", &["ferry", "skopeo"][..]),
    ] {
        for tool in tools {
            let cells = row(&report, scenario, tool);
            assert!(
                seconds(&cells[3]) > 0.0,
                "wall time of {tool} in {scenario}"
            );
            seconds(&cells[4]);
            assert!(cells[5].ends_with(" MiB"), "peak RSS of {tool}: {cells:?}");
            assert!(
                cells[9].ends_with('B'),
                "uploaded bytes of {tool}: {cells:?}"
            );
        }
    }
    // Every row states its transport; over TLS the registry's server negotiated a version.
    assert!(row(&report, "registry-copy", "ferry")[1].starts_with("http"));
    let tls = row(&report, "registry-copy-tls", "ferry")[1].clone();
    assert!(
        tls.starts_with("https ") && (tls.contains("h2") || tls.contains("h1.1")),
        "{tls}"
    );
    assert!(
        row(&report, "promotion-tls-far", "ferry")[1].ends_with(", 50 ms"),
        "{report}"
    );
    // Every streaming tool uploads the whole image, and the registries saw their requests.
    let uploaded = row(&report, "registry-copy", "ferry")[9].clone();
    for tool in &streaming[1..] {
        assert_eq!(row(&report, "registry-copy", tool)[9], uploaded, "{tool}");
    }
    for scenario in ["registry-copy", "registry-copy-tls"] {
        for tool in streaming {
            let requests: usize = row(&report, scenario, tool)[6]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                requests > 5,
                "{tool} made {requests} requests in {scenario}"
            );
        }
    }
    // A promotion mounts: ferry uploads no blob byte (over TLS, only requests' bytes go up).
    assert_eq!(row(&report, "promotion-warm", "ferry")[9], "0 B");
    let sent = row(&report, "promotion-tls-far", "ferry")[9].clone();
    assert!(sent.ends_with(" KiB") || sent.ends_with(" B"), "{sent}");
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

#[test]
fn quick_sync_run_reports_both_tools_in_its_own_section() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    // The copy scenarios' section is left as it is.
    std::fs::write(&out, "# Benchmarks\n\nthe copy scenarios\n").unwrap();
    let run = |out: &std::path::Path, scenarios: &str| {
        let args = ["sync", "--quick", "--reps", "1", "--scenario", scenarios];
        bench(&args, out, dir.path()).0
    };
    let report = run(&out, "sync-cold,sync-unchanged");
    assert!(
        report.starts_with("# Benchmarks\n\nthe copy scenarios\n"),
        "{report}"
    );
    let sync_row = |scenario: &str, tool: &str| -> Vec<String> {
        report
            .lines()
            .map(cells)
            .find(|cells| cells.len() == 10 && cells[0] == scenario && cells[1] == tool)
            .unwrap_or_else(|| panic!("no row for {tool} in {scenario}:\n{report}"))
    };
    // Columns: scenario, tool, wall, CPU, registries' CPU, peak RSS, requests, by method,
    // bytes uploaded, disk.
    for scenario in ["sync-cold", "sync-unchanged"] {
        for tool in ["ferry sync", "skopeo sync"] {
            let cells = sync_row(scenario, tool);
            assert!(seconds(&cells[2]) > 0.0, "{cells:?}");
            let requests: usize = cells[6].parse().unwrap();
            assert!(requests > 0, "{cells:?}");
        }
    }
    // The registries' CPU is a time (read in clock ticks: a quick run's may be 0.00 s).
    assert!(seconds(&sync_row("sync-cold", "ferry sync")[4]) >= 0.0);
    // Both upload the corpus's unique bytes once when cold; nothing when nothing changed.
    assert_eq!(
        sync_row("sync-cold", "ferry sync")[8],
        sync_row("sync-cold", "skopeo sync")[8]
    );
    assert_eq!(sync_row("sync-unchanged", "ferry sync")[8], "0");
    // The floor of an unchanged sync sends exactly ferry's requests, and changes nothing.
    let floor = sync_row("sync-unchanged", "floor");
    assert_eq!(
        floor[6],
        sync_row("sync-unchanged", "ferry sync")[6],
        "{report}"
    );
    assert_eq!(floor[8], "0", "{report}");
    // The floor of a cold sync uploads each unique byte once, as ferry does, with no more
    // requests than ferry.
    let cold_floor = sync_row("sync-cold", "floor");
    assert_eq!(
        cold_floor[8],
        sync_row("sync-cold", "ferry sync")[8],
        "{report}"
    );
    let requests = |cells: &[String]| cells[6].parse::<usize>().unwrap();
    assert!(
        requests(&cold_floor) <= requests(&sync_row("sync-cold", "ferry sync")),
        "{report}"
    );
    assert!(
        report.contains("- requests ≤ 2 per repository + 2 per tag (+ catalog pages):"),
        "{report}"
    );
    // A second run replaces the section instead of adding one.
    let again = run(&out, "sync-unchanged");
    assert_eq!(
        again.matches("<!-- ferry-bench sync: begin -->").count(),
        1,
        "{again}"
    );
    assert!(again.starts_with("# Benchmarks\n\nthe copy scenarios\n"));
}

#[test]
fn quick_everyday_run_reports_ferry_and_the_peers_found_in_its_own_section() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    std::fs::write(&out, "# Benchmarks\n\nthe copy scenarios\n").unwrap();
    let (report, stderr) = bench(&["everyday", "--quick", "--reps", "1"], &out, dir.path());
    assert!(report.starts_with("# Benchmarks\n\nthe copy scenarios\n"));
    let cells = |tool: &str| -> Vec<String> {
        report
            .lines()
            .map(cells)
            .find(|cells| cells.len() == 7 && cells[1] == tool)
            .unwrap_or_else(|| panic!("no row for {tool}:\n{report}"))
    };
    // Columns: work, tool, wall, CPU, requests, by method, vs ferry. Each run's output was
    // checked by the harness (1,000 tags listed, the index's bytes printed).
    for (tool, requests) in [
        ("ferry ls", 1),
        ("ferry inspect --raw", 1),
        ("ferry inspect --config --platform", 3),
        ("ferry inspect --no-referrers", 1 + 4 + 4),
        ("skopeo list-tags", 2),
    ] {
        let row = cells(tool);
        assert!(seconds(&row[2]) > 0.0, "{row:?}");
        assert_eq!(row[4], requests.to_string(), "{row:?}");
    }
    // The peers not installed are named as left out (CI has none of crane, regctl, oras).
    for (program, tool) in [
        ("crane", "crane ls"),
        ("regctl", "regctl tag ls"),
        ("oras", "oras manifest fetch"),
    ] {
        assert!(
            report.contains(&format!("| {tool} |"))
                || stderr.contains(&format!("`{program}` is not found")),
            "{program}: {stderr}"
        );
    }
    assert!(
        report.contains("<!-- ferry-bench everyday: begin -->") && report.contains("Targets:"),
        "{report}"
    );
}

#[test]
fn quick_resumes_run_measures_what_one_cut_costs_ferry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let args = ["faults", "--resumes", "--quick", "--tool", "ferry"];
    let (report, _) = bench(&args, &out, dir.path());
    // Columns: case, tool, intact, wall, moved, again, faults applied.
    let cut = |case: &str, tool: &str| -> Vec<String> {
        report
            .lines()
            .map(cells)
            .find(|cells| cells.len() == 7 && cells[0] == case && cells[1] == tool)
            .unwrap_or_else(|| panic!("no {case} row for {tool}:\n{report}"))
    };
    for (case, tool) in [
        ("download", "ferry"),
        ("upload", "ferry"),
        ("upload", "ferry, chunked"),
    ] {
        let cells = cut(case, tool);
        assert_eq!(cells[2], "yes", "{cells:?}");
        assert_eq!(cells[6], "1", "one fault applied: {cells:?}");
    }
    // The quick layer is 16 MiB: the cut download is resumed from the byte reached (within
    // 1 MiB), the cut chunk from the registry's offset (the half the proxy took is sent
    // again), the one `PUT` again whole.
    let met = |prefix: &str| {
        report
            .lines()
            .any(|l| l.starts_with(prefix) && l.ends_with("→ met"))
    };
    assert!(met("- download ferry: "), "{report}");
    assert!(met("- upload ferry, chunked: "), "{report}");
    // About half the 16 MiB layer sent again either way (the one `PUT` cut at half, the cut
    // half of the one chunk), beside the small config and manifest.
    for tool in ["ferry", "ferry, chunked"] {
        let again = &cut("upload", tool)[5];
        assert!(
            again.starts_with("8 MiB") || again.starts_with("8."),
            "{report}"
        );
    }
}
