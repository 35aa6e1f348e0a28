//! The JSON output of `ls`, `inspect`, `digest`, `tag`, `rm`, `login` and `logout` checked
//! against the schemas in `docs/json` by Python's `jsonschema` (installed by `scripts/test`).

use std::path::Path;
use std::process::Command;

use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{ArtifactBuilder, ImageBuilder, IndexBuilder, Registry};

use crate::support::*;

const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/json");

/// Validates `doc` with `schema` (a file of `docs/json`, with the others registered for its
/// references); returns the errors, one per line.
const VALIDATE: &str = r#"
import glob, json, os, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
schemas, name = sys.argv[1], sys.argv[2]
loaded = [json.load(open(f)) for f in glob.glob(os.path.join(schemas, "*.schema.json"))]
registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in loaded)
schema = json.load(open(os.path.join(schemas, name)))
Draft202012Validator.check_schema(schema)
doc = json.load(sys.stdin)
errors = list(Draft202012Validator(schema, registry=registry).iter_errors(doc))
for e in errors:
    print(f"{list(e.absolute_path)}: {e.message}")
sys.exit(1 if errors else 0)
"#;

fn validator_available() -> bool {
    Command::new("python3")
        .args(["-c", "import jsonschema, referencing"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The errors of `json` against `schema`; empty when it is valid.
fn errors(schema: &str, json: &str) -> String {
    let mut python = Command::new("python3");
    python.args(["-c", VALIDATE, SCHEMAS, schema]);
    let out = output_with_stdin(python, json.as_bytes());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.success(), text.is_empty(), "{text}");
    text
}

fn check(schema: &str, run: Run) {
    assert_eq!(run.code, 0, "{schema}: {}\n{}", run.stdout, run.stderr);
    let found = errors(schema, &run.stdout);
    assert!(found.is_empty(), "{schema}: {found}\n{}", run.stdout);
}

fn ferry_in(docker: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    ferry_with(args, &[("DOCKER_CONFIG", docker.to_str().unwrap())], stdin)
}

#[test]
fn the_json_of_every_everyday_command_matches_its_schema_in_docs() {
    assert!(
        validator_available(),
        "python3 with jsonschema is needed to check the JSON output against docs/json: run \
         `pip install -r test-support/requirements.txt` (scripts/test does)"
    );
    // The validator refuses what the schemas refuse.
    assert!(
        !errors(
            "digest.schema.json",
            r#"{"reference": "x", "digest": "nope"}"#
        )
        .is_empty()
    );
    assert!(
        !errors(
            "rm.schema.json",
            r#"{"deleted": "tag", "repository": "r", "digest": "sha256:00"}"#
        )
        .is_empty()
    );

    let reg = Registry::builder().user("alice", "pw").start().unwrap();
    let r = reg.addr();
    let home = tempfile::tempdir().unwrap();
    let docker = home.path().join("docker");
    let json = ["--format", "json", "--plain-http"];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(json.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ferry_in(&docker, &args, None)
    };

    check(
        "login.schema.json",
        ferry_in(
            &docker,
            &with(&["login", r, "-u", "alice", "--password-stdin"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            Some("pw"),
        ),
    );

    let index = IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm/v7"], &[500], 3)
        .build();
    let amd = &index.images[0].manifest;
    let signature = ArtifactBuilder::signature(&amd.descriptor, b"sig").build();
    let src = home.path().join("src");
    write_oci_layout(&src, &[(Some("v1"), &index), (None, &signature)]).unwrap();
    let cp = ferry_in(
        &docker,
        &[
            "cp",
            "-r",
            "--plain-http",
            &format!("oci:{}:v1", src.display()),
            &format!("{r}/app:v1"),
        ],
        None,
    );
    assert_eq!(cp.code, 0, "{}", cp.stderr);

    check("ls.schema.json", run(&["ls", &format!("{r}/app")]));
    check("ls.schema.json", run(&["ls", &format!("{r}/")]));
    check(
        "ls.schema.json",
        run(&["ls", &format!("oci-dir:{}/", home.path().display())]),
    );
    check(
        "digest.schema.json",
        run(&["digest", "--platform", "linux/arm", &format!("{r}/app:v1")]),
    );
    check(
        "inspect.schema.json",
        run(&["inspect", &format!("{r}/app:v1")]),
    );
    check(
        "inspect.schema.json",
        run(&[
            "inspect",
            &format!("{r}/app@{}", signature.manifest.digest()),
        ]),
    );
    let mut deep = IndexBuilder::new().image(ImageBuilder::new().layer(10));
    for _ in 0..8 {
        deep = IndexBuilder::new().index(deep, None);
    }
    let deep_dir = home.path().join("deep");
    write_oci_layout(&deep_dir, &[(Some("d"), &deep.build())]).unwrap();
    check(
        "inspect.schema.json",
        run(&["inspect", &format!("oci:{}:d", deep_dir.display())]),
    );
    check(
        "tag.schema.json",
        run(&["tag", &format!("{r}/app:v1"), "v2", "v3"]),
    );
    check(
        "rm.schema.json",
        run(&[
            "rm",
            &format!("{r}/app@{}", signature.manifest.digest()),
            "--manifest",
            "--yes",
        ]),
    );
    check(
        "rm.schema.json",
        run(&["rm", &format!("oci:{}:v1", src.display())]),
    );
    check("logout.schema.json", run(&["logout", r]));
}
