//! `ferry login` and `ferry logout` against docker-registry 2.8 with htpasswd and with the token
//! issuer, storing in auth files and through a credential helper the test writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ferry_test_support::{Registry, TokenIssuer};
use serde_json::{Value, json};

use crate::support::*;

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs ferry with `DOCKER_CONFIG=docker` (and more environment), `stdin` piped in.
fn ferry_in(docker: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut all = vec![("DOCKER_CONFIG", docker.to_str().unwrap())];
    all.extend_from_slice(env);
    ferry_with(args, &all, stdin)
}

/// `ferry login --plain-http R -u alice --password-stdin` (and `extra`), `password` on stdin.
fn login_alice(
    docker: &Path,
    r: &str,
    password: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "login",
        "--plain-http",
        r,
        "-u",
        "alice",
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    ferry_in(docker, &args, env, Some(password))
}

/// `ferry ls --plain-http R/`: the catalog, which needs the credentials; returns the exit code.
fn catalog(docker: &Path, r: &str, env: &[(&str, &str)]) -> i32 {
    ferry_in(docker, &["ls", "--plain-http", &format!("{r}/")], env, None).code
}

#[test]
fn login_checks_basic_credentials_stores_them_keeping_the_file_and_logout_removes_them() {
    let reg = Registry::builder().user("alice", "s3cret").start().unwrap();
    let r = reg.addr();
    let home = tempfile::tempdir().unwrap();
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let config = docker.join("config.json");
    std::fs::write(
        &config,
        r#"{"auths": {"other.example": {"auth": "b3RoZXI6cHc="}}, "psFormat": "table {{.ID}}"}"#,
    )
    .unwrap();

    // A wrong password: refused, nothing stored.
    let run = login_alice(&docker, r, "wrong\n", &[], &[]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: {r}: authentication required or refused: the registry refused the \
             credentials (HTTP 401 on `GET /v2/`); check the user name and password"
        )
    );
    assert!(!run.stderr.contains("wrong"));
    assert_eq!(read_json(&config)["auths"].as_object().unwrap().len(), 1);

    // The right one: `GET /v2/` twice (the challenge, then Basic), then stored.
    reg.clear_log();
    let run = login_alice(&docker, r, "s3cret\n", &[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim_end(),
        format!(
            "Logged in to {r} as alice (checked: basic; stored in `{}`)",
            config.display()
        )
    );
    assert!(
        run.stderr.contains(&format!(
            "warning: the credentials are stored unencrypted in `{}`",
            config.display()
        )),
        "{}",
        run.stderr
    );
    let seen: Vec<(String, u16)> = reg
        .requests()
        .into_iter()
        .map(|q| (format!("{} {}", q.method, q.path), q.status))
        .collect();
    assert_eq!(
        seen,
        [("GET /v2/".to_string(), 401), ("GET /v2/".to_string(), 200)]
    );
    let stored = read_json(&config);
    assert_eq!(stored["auths"][r]["auth"], b64("alice:s3cret"));
    assert_eq!(stored["auths"]["other.example"]["auth"], "b3RoZXI6cHc=");
    assert_eq!(stored["psFormat"], "table {{.ID}}");
    assert_eq!(mode(&config), 0o600);

    // Every command now finds them: the catalog needs them.
    assert_eq!(catalog(&docker, r, &[]), 0);

    // Logout removes them, and only them.
    let run = ferry_in(&docker, &["logout", r], &[], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim_end(),
        format!(
            "Removed the credentials for {r} from `{}`",
            config.display()
        )
    );
    let left = read_json(&config);
    assert!(left["auths"].get(r).is_none(), "{left}");
    assert_eq!(left["auths"]["other.example"]["auth"], "b3RoZXI6cHc=");
    assert_eq!(catalog(&docker, r, &[]), 4);
    let run = ferry_in(&docker, &["logout", r], &[], None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("error: credentials for {r} not found")),
        "{}",
        run.stderr
    );
}

#[test]
fn login_fetches_a_token_to_check_credentials_and_the_token_service_refusal_is_said() {
    let issuer = TokenIssuer::builder()
        .user("alice", "pw")
        .allow("alice", "app", &["pull"])
        .start()
        .unwrap();
    let reg = Registry::builder().token_auth(&issuer).start().unwrap();
    let r = reg.addr();
    let home = tempfile::tempdir().unwrap();
    let docker = home.path().join("docker");

    let run = login_alice(&docker, r, "nope", &[], &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("refused the credentials") && run.stderr.contains("token server"),
        "{}",
        run.stderr
    );
    assert!(!docker.join("config.json").exists());

    let run = login_alice(&docker, r, "pw", &[], &["--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["registry"], r);
    assert_eq!(doc["username"], "alice");
    assert_eq!(doc["checked"], "token");
    assert_eq!(
        doc["storedIn"],
        json!({"kind": "file", "path": docker.join("config.json").display().to_string()})
    );
    // The token was asked for alice, with no scope, as docker's login does.
    let asked = issuer.requests();
    let last = asked.last().unwrap();
    assert_eq!(
        (last.user.as_deref(), last.scopes.len(), last.status),
        (Some("alice"), 0, 200)
    );
    let config = read_json(&docker.join("config.json"));
    assert_eq!(config["auths"][r]["auth"], b64("alice:pw"));
    assert_eq!(mode(&docker.join("config.json")), 0o600);
}

/// A credential helper as docker's protocol has it: `store` keeps the JSON it is given,
/// `get` answers it, `erase` removes it; each action and its stdin are logged.
fn write_helper(dir: &Path) -> PathBuf {
    let helper = dir.join("docker-credential-ferrytest");
    std::fs::write(
        &helper,
        r#"#!/bin/sh
d=$(dirname "$0")
input=$(cat)
printf '%s %s\n' "$1" "$input" >> "$d/helper.log"
case "$1" in
  store) printf '%s' "$input" > "$d/helper.stored" ;;
  get|erase)
    if [ ! -f "$d/helper.stored" ]; then
      echo "credentials not found in native keychain"; exit 1
    fi
    if [ "$1" = get ]; then cat "$d/helper.stored"; else rm "$d/helper.stored"; fi ;;
  *) echo "unknown action $1"; exit 1 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.join("helper.log")
}

#[test]
fn login_and_logout_go_through_the_credential_helper_the_config_names() {
    let reg = Registry::builder().user("alice", "s3cret").start().unwrap();
    let r = reg.addr();
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = write_helper(&bin);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [("PATH", path.as_str())];

    for (name, config_json) in [
        ("credsStore", json!({"credsStore": "ferrytest"})),
        (
            "credHelpers",
            json!({"credHelpers": {r: "ferrytest"}, "auths": {r: {"auth": b64("old:stale")}}}),
        ),
    ] {
        let docker = home.path().join(name);
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::write(docker.join("config.json"), config_json.to_string()).unwrap();
        let _ = std::fs::remove_file(&log);

        let run = login_alice(&docker, r, "s3cret\n", &env, &[]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(
            run.stdout.trim_end(),
            format!(
                "Logged in to {r} as alice (checked: basic; stored in credential helper \
                 `docker-credential-ferrytest`)"
            ),
            "{name}"
        );
        assert!(
            !run.stderr.contains("unencrypted"),
            "{name}: {}",
            run.stderr
        );
        let logged = std::fs::read_to_string(&log).unwrap();
        let first = logged.lines().next().unwrap();
        assert_eq!(
            first,
            format!(r#"store {{"ServerURL":"{r}","Username":"alice","Secret":"s3cret"}}"#),
            "{name}: the store request, as docker's helpers take it"
        );
        let config = read_json(&docker.join("config.json"));
        assert!(
            !config.to_string().contains(&b64("alice:s3cret")),
            "{name}: no secret in the file: {config}"
        );

        // Read back through the helper's `get`.
        assert_eq!(catalog(&docker, r, &env), 0);
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .any(|l| l == format!("get {r}")),
            "{name}"
        );

        let run = ferry_in(&docker, &["logout", r], &env, None);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(
            run.stdout.trim_end(),
            format!(
                "Removed the credentials for {r} from credential helper \
                 `docker-credential-ferrytest`"
            ),
            "{name}"
        );
        assert!(!bin.join("helper.stored").exists(), "{name}");
        assert_eq!(catalog(&docker, r, &env), 4);
    }
}

#[test]
fn login_writes_the_file_registry_auth_file_names_which_every_command_reads_first() {
    let reg = Registry::builder().user("alice", "s3cret").start().unwrap();
    let r = reg.addr();
    let home = tempfile::tempdir().unwrap();
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    // docker's file holds a stale password, read after REGISTRY_AUTH_FILE.
    std::fs::write(
        docker.join("config.json"),
        json!({"auths": {r: {"auth": b64("alice:stale")}}}).to_string(),
    )
    .unwrap();
    let auth_file = home.path().join("containers").join("auth.json");
    let env = [("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap())];
    assert_eq!(catalog(&docker, r, &env), 4);

    let run = login_alice(&docker, r, "s3cret", &env, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("stored in `{}`", auth_file.display())),
        "{}",
        run.stdout
    );
    assert_eq!(
        read_json(&auth_file)["auths"][r]["auth"],
        b64("alice:s3cret")
    );
    assert_eq!(mode(&auth_file), 0o600);
    assert_eq!(
        mode(auth_file.parent().unwrap()),
        0o700,
        "the directory made for it"
    );
    assert_eq!(catalog(&docker, r, &env), 0);

    // Logout clears both files, so nothing stale is found afterwards.
    let run = ferry_in(&docker, &["logout", r], &env, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [
            format!(
                "Removed the credentials for {r} from `{}`",
                auth_file.display()
            ),
            format!(
                "Removed the credentials for {r} from `{}`",
                docker.join("config.json").display()
            ),
        ]
    );
}

#[test]
fn a_password_as_an_argument_is_refused_unless_spelled_out_and_then_warned_about() {
    let reg = Registry::builder().user("alice", "s3cret").start().unwrap();
    let r = reg.addr();
    let home = tempfile::tempdir().unwrap();
    let docker = home.path().join("docker");

    let run = ferry_in(
        &docker,
        &["login", "--plain-http", r, "-u", "alice", "s3cret"],
        &[],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("a password is not taken as an argument"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    let run = ferry_in(
        &docker,
        &["login", "--plain-http", r, "-u", "alice", "-p", "s3cret"],
        &[],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!docker.join("config.json").exists());

    let run = ferry_in(
        &docker,
        &[
            "login",
            "--plain-http",
            r,
            "-u",
            "alice",
            "--password",
            "s3cret",
        ],
        &[],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().next(),
        Some("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    );

    // Without a terminal, what is missing is asked for by flag.
    let run = ferry_in(&docker, &["login", "--plain-http", r], &[], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("`-u USER`"), "{}", run.stderr);
    let run = ferry_in(
        &docker,
        &["login", "--plain-http", r, "-u", "alice"],
        &[],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("`--password-stdin`"), "{}", run.stderr);
}
