//! The token issuer with a real registry in `auth: token` mode.

use base64::Engine as _;
use ferry_core::sha256;
use ferry_test_support::{Registry, TokenIssuer, http};

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn issuer() -> TokenIssuer {
    TokenIssuer::builder()
        .user("alice", "pw-alice")
        .user("bob", "pw-bob")
        .allow("alice", "team/*", &["pull", "push"])
        .allow("bob", "team/app", &["pull"])
        .start()
        .unwrap()
}

/// Asks the issuer for a token over HTTP with basic auth; returns (status, token).
async fn get_token(
    issuer: &TokenIssuer,
    auth: Option<&str>,
    scopes: &[&str],
) -> (u16, Option<String>) {
    let mut url = format!("{}?service={}", issuer.realm(), issuer.service());
    for scope in scopes {
        url.push_str(&format!("&scope={scope}"));
    }
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
    let answer = http("GET", &url, &headers, vec![]).await.unwrap();
    let token = (answer.status == 200).then(|| {
        let json = answer.json().unwrap();
        assert_eq!(json["token"], json["access_token"]);
        assert!(json["expires_in"].as_u64().unwrap() > 0);
        assert!(json["issued_at"].as_str().unwrap().ends_with('Z'));
        json["token"].as_str().unwrap().to_string()
    });
    (answer.status, token)
}

/// The JSON claims of a token, without checking its signature.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn push_blob(base: &str, repo: &str, data: &[u8], bearer: &str) -> (u16, Option<String>) {
    let auth = [("authorization", bearer)];
    let post = http(
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &auth,
        vec![],
    )
    .await
    .unwrap();
    if post.status != 202 {
        return (post.status, None);
    }
    let location = post.header("location").unwrap().to_string();
    let digest = sha256(data).to_string();
    let put = http(
        "PUT",
        &format!("{location}&digest={digest}"),
        &auth,
        data.to_vec(),
    )
    .await
    .unwrap();
    (put.status, Some(digest))
}

#[tokio::test]
async fn registry_challenges_and_accepts_issued_tokens() {
    let issuer = issuer();
    let registry = Registry::builder().token_auth(&issuer).start().unwrap();
    let base = registry.url();
    let digest = sha256(b"layer").to_string();

    let anonymous = http(
        "HEAD",
        &format!("{base}/v2/team/app/blobs/{digest}"),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("realm=\"{}\"", issuer.realm())),
        "{challenge}"
    );
    assert!(
        challenge.contains("service=\"ferry-test-registry\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:team/app:pull\""),
        "{challenge}"
    );

    let alice = basic("alice", "pw-alice");
    let (status, token) =
        get_token(&issuer, Some(&alice), &["repository:team/app:pull,push"]).await;
    assert_eq!(status, 200);
    let token = token.unwrap();
    let bearer = format!("Bearer {token}");
    let (status, pushed) = push_blob(&base, "team/app", b"layer", &bearer).await;
    assert_eq!(status, 201);
    assert_eq!(pushed.as_deref(), Some(digest.as_str()));

    let head = http(
        "HEAD",
        &format!("{base}/v2/team/app/blobs/{digest}"),
        &[("authorization", &bearer)],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(issuer.request_count(), 1);
}

#[tokio::test]
async fn tokens_grant_only_the_allowed_actions() {
    let issuer = issuer();
    let registry = Registry::builder().token_auth(&issuer).start().unwrap();

    let bob = basic("bob", "pw-bob");
    let (status, token) = get_token(
        &issuer,
        Some(&bob),
        &["repository:team/app:pull,push", "repository:other:pull"],
    )
    .await;
    assert_eq!(status, 200);
    let token = token.unwrap();
    let access = &claims(&token)["access"];
    assert_eq!(
        access,
        &serde_json::json!([{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    );

    let (status, _) = push_blob(
        &registry.url(),
        "team/app",
        b"nope",
        &format!("Bearer {token}"),
    )
    .await;
    assert_eq!(status, 401, "a pull-only token must not push");
    let (status, _) = get_token(
        &issuer,
        Some(&basic("bob", "wrong")),
        &["repository:team/app:pull"],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = get_token(&issuer, None, &["repository:team/app:pull"]).await;
    assert_eq!(status, 401, "anonymous access is off by default");

    let statuses: Vec<u16> = issuer.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 401]);
}

#[tokio::test]
async fn anonymous_pull_when_configured() {
    let issuer = TokenIssuer::builder()
        .allow_anonymous("public/*", &["pull"])
        .start()
        .unwrap();
    let (status, token) = get_token(&issuer, None, &["repository:public/app:pull,push"]).await;
    assert_eq!(status, 200);
    let claims = claims(&token.unwrap());
    assert_eq!(claims["access"][0]["actions"], serde_json::json!(["pull"]));
    assert_eq!(claims["sub"], "");
}

#[tokio::test]
async fn oauth2_password_and_refresh_token_grants() {
    let issuer = issuer();
    let registry = Registry::builder().token_auth(&issuer).start().unwrap();
    let form = format!(
        "grant_type=password&username=alice&password=pw-alice&service={}&scope=repository%3Ateam%2Fapp%3Apull&client_id=ferry&access_type=offline",
        issuer.service()
    );
    let answer = http(
        "POST",
        &issuer.realm(),
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json().unwrap();
    let refresh = json["refresh_token"].as_str().unwrap().to_string();

    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service={}&scope=repository%3Ateam%2Fapp%3Apull&client_id=ferry",
        issuer.service()
    );
    let answer = http(
        "POST",
        &issuer.realm(),
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let token = answer.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(claims(&token)["sub"], "alice");
    let tags = http(
        "GET",
        &format!("{}/v2/team/app/tags/list", registry.url()),
        &[("authorization", &format!("Bearer {token}"))],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(
        tags.status,
        404,
        "authorized, the repository is just unknown: {}",
        tags.text()
    );

    let bad = http(
        "POST",
        &issuer.realm(),
        &[],
        "grant_type=refresh_token&refresh_token=forged&service=ferry-test-registry".to_string(),
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 401);
    let grants: Vec<Option<String>> = issuer
        .requests()
        .into_iter()
        .map(|r| r.grant_type)
        .collect();
    assert_eq!(
        grants,
        [
            Some("password".into()),
            Some("refresh_token".into()),
            Some("refresh_token".into())
        ]
    );
}

#[tokio::test]
async fn minted_tokens_and_runtime_policy_changes() {
    let issuer = issuer();
    let registry = Registry::builder().token_auth(&issuer).start().unwrap();
    let url = format!("{}/v2/", registry.url());
    let token = issuer.token_for(Some("carol"), &["repository:team/app:pull"]);
    assert_eq!(claims(&token)["access"], serde_json::json!([]));
    let ok = http(
        "GET",
        &url,
        &[("authorization", &format!("Bearer {token}"))],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "any valid token opens /v2/");

    issuer.allow(Some("carol"), "team/app", &["pull"]);
    let token = issuer.token_for(Some("carol"), &["repository:team/app:pull"]);
    assert_eq!(claims(&token)["access"][0]["name"], "team/app");
    assert_eq!(issuer.request_count(), 0, "minting sends no request");
}
