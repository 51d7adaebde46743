//! Security of the HTTP facade against a real `weaved`: credentials on every documented route
//! but health and the document, loopback Host only, no state change from a foreign Origin,
//! private secrets, one-time login codes, a session cookie that survives a restart until logout.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use weave_test_kit::*;

#[tokio::test]
async fn every_documented_route_but_health_and_the_document_needs_credentials() {
    let d = Weaved::start();
    let doc: Value = reqwest::get(d.url("/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let health = reqwest::get(d.url("/api/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let public = op
                .get("security")
                .is_some_and(|s| s.as_array().is_some_and(|a| a.is_empty()));
            if public {
                assert!(
                    path == "/api/health" || path == "/api/openapi.json",
                    "{path} is public"
                );
                continue;
            }
            let url = d.url(
                &path
                    .replace("{id}", "some-id")
                    .replace("{agent_id}", "a")
                    .replace("{relay_id}", "r")
                    .replace("{action_id}", "x")
                    .replace("{message_id}", "m"),
            );
            let client = reqwest::Client::new();
            let req = match method.as_str() {
                "get" => client.get(&url),
                "post" => client.post(&url).json(&json!({})),
                "patch" => client.patch(&url).json(&json!({})),
                "delete" => client.delete(&url),
                other => panic!("method {other}"),
            };
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path} without credentials");
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
            let p: Value = resp.json().await.unwrap();
            assert_eq!(
                (p["status"].as_u64(), p["code"].as_str()),
                (Some(401), Some("unauthorized"))
            );
            let wrong = reqwest::Client::new()
                .get(&url)
                .bearer_auth("not-the-token")
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), 401, "{path} with a wrong token");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} routes documented");
}

#[tokio::test]
async fn foreign_host_and_foreign_origin_are_refused() {
    let d = Weaved::start();
    let evil = d
        .get("/api/sessions")
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let public = reqwest::Client::new()
        .get(d.url("/api/health"))
        .header("Host", "rebind.attacker.com:8787")
        .send()
        .await
        .unwrap();
    assert_eq!(
        public.status(),
        403,
        "DNS rebinding is refused on every route"
    );
    let foreign = d
        .post("/api/sessions", json!({ "name": "x" }))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let p: Value = foreign.json().await.unwrap();
    assert_eq!(p["code"], "foreign_origin");
    let local = d
        .post("/api/sessions", json!({ "name": "x" }))
        .header("Origin", d.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 201);
    // Another port of the same loopback host is another origin.
    let other_port = d
        .post("/api/sessions", json!({ "name": "x" }))
        .header("Origin", "http://127.0.0.1:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(other_port.status(), 403);
    // A body a form or a no-preflight fetch could send is never parsed, token or not.
    let plain = reqwest::Client::new()
        .post(d.url("/api/sessions"))
        .bearer_auth(&d.token)
        .header("Content-Type", "text/plain")
        .body(r#"{"name":"plain"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    let p: Value = plain.json().await.unwrap();
    assert_eq!(p["code"], "unsupported_media_type");
    // A GET with a foreign Origin changes nothing and is allowed (read-only).
    assert_eq!(
        d.get("/api/sessions")
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn secrets_are_private_files() {
    let d = Weaved::start();
    for f in ["token", "cookie.key"] {
        let mode = std::fs::metadata(d.home.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    assert_eq!(d.token.len(), 64);
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn login_code_gives_a_cookie_once_which_survives_a_restart_until_logout() {
    let mut d = Weaved::start();
    let resp = no_redirects().get(&d.login_url).send().await.unwrap();
    assert!(resp.status().is_redirection());
    assert_eq!(resp.headers()["location"], "/");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let with_cookie = |d: &Weaved| {
        reqwest::Client::new()
            .get(d.url("/api/sessions"))
            .header("Cookie", cookie.clone())
    };
    assert_eq!(with_cookie(&d).send().await.unwrap().status(), 200);
    // The code is spent.
    assert_eq!(
        no_redirects()
            .get(&d.login_url)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // A tampered cookie is refused.
    let tampered = format!("{}x", cookie);
    let resp = reqwest::Client::new()
        .get(d.url("/api/sessions"))
        .header("Cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The cookie survives a restart.
    assert_eq!(d.terminate(), Some(0));
    d.spawn().unwrap();
    assert_eq!(with_cookie(&d).send().await.unwrap().status(), 200);
    // Logout revokes it.
    let out = reqwest::Client::new()
        .post(d.url("/api/logout"))
        .header("Cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(with_cookie(&d).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_second_daemon_on_the_same_home_names_the_first_and_exits_non_zero() {
    let d = Weaved::start();
    let out = std::process::Command::new(program("weaved"))
        .arg("--home")
        .arg(&d.home)
        .arg("--http")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", d.pid())), "{err}");
}

/// A planted `token` symlink (to a file the attacker can read) and a guessable hand-written
/// token are refused at start, naming the file; with the file removed a new token is made.
#[tokio::test]
async fn a_token_symlink_or_a_short_token_is_refused_at_start() {
    let mut d = Weaved::start();
    assert_eq!(d.terminate(), Some(0));
    let token = d.home.join("token");
    let planted = d.home.join("planted");
    std::fs::write(&planted, format!("{}\n", "a".repeat(64))).unwrap();
    std::fs::remove_file(&token).unwrap();
    std::os::unix::fs::symlink(&planted, &token).unwrap();
    let err = d.spawn().expect_err("a symlink is refused");
    assert!(err.contains("is a symlink"), "{err}");
    std::fs::remove_file(&token).unwrap();
    std::fs::write(&token, "x\n").unwrap();
    let err = d.spawn().expect_err("a 1-character token is refused");
    assert!(err.contains("well-formed"), "{err}");
    std::fs::remove_file(&token).unwrap();
    d.spawn().expect("a new token is made");
    assert_eq!(d.token.len(), 64);
    assert_eq!(d.get("/api/sessions").send().await.unwrap().status(), 200);
}

/// Slowloris: 200 sockets that send half a request's headers and then nothing are closed by
/// the daemon after its header-read timeout (10 s); others are served meanwhile.
#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = Weaved::start();
    let addr = d.base.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        stalled.push(s);
    }
    let health = reqwest::get(d.url("/api/health")).await.unwrap();
    assert_eq!(health.status(), 200, "served beside 200 stalled sockets");
    let started = std::time::Instant::now();
    for mut s in stalled {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("closed within 20 s");
        // Closed: end of stream, or a reset; hyper may answer 408 first.
        if let Ok(n) = read {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
        }
    }
    let waited = started.elapsed();
    assert!(waited.as_secs() >= 5, "not before the timeout: {waited:?}");
}
