//! Bad input never crashes the emulator: malformed bodies, unknown operations and routes,
//! oversized and random payloads all get a proper error in the service's format.

mod common;

use common::*;

const SSO_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIATEST/20261122/us-east-1/sso/aws4_request, SignedHeaders=host, Signature=0";
const WEB_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIATEST/20261122/us-east-1/workspaces-web/aws4_request, SignedHeaders=host, Signature=0";
const MPA_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIATEST/20261122/us-east-1/mpa/aws4_request, SignedHeaders=host, Signature=0";

fn sso_headers(target: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", SSO_AUTH.to_string()),
        ("X-Amz-Target", format!("SWBExternalService.{target}")),
        ("Content-Type", "application/x-amz-json-1.1".to_string()),
    ]
}

async fn call(
    emu: &identity_emulator::Emulator,
    method: &str,
    path: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = raw(emu, method, path, &h, body).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}

#[tokio::test]
async fn malformed_and_mistyped_json_is_a_serialization_error() {
    let emu = start(fast_config()).await;
    let (status, body) = call(
        &emu,
        "POST",
        "/",
        &sso_headers("CreateInstance"),
        b"{\"Name\": ",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "SerializationException");
    let (status, body) = call(&emu, "POST", "/", &sso_headers("CreateInstance"), b"[1,2]").await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (status, body) = call(
        &emu,
        "POST",
        "/",
        &sso_headers("CreateInstance"),
        br#"{"Name": 7}"#,
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (status, body) = call(
        &emu,
        "POST",
        "/",
        &sso_headers("ListInstances"),
        br#"{"MaxResults": "ten"}"#,
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("SerializationException"))
    );

    let web = vec![
        ("Authorization", WEB_AUTH.to_string()),
        ("Content-Type", "application/json".to_string()),
    ];
    let (status, body) = call(&emu, "POST", "/identityProviders", &web, b"not json").await;
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "cannotParse");
    assert!(body["message"].is_string());
    let (status, body) = call(
        &emu,
        "GET",
        "/portals/x/identityProviders?maxResults=abc",
        &web,
        b"",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(emu.counters().created("CreateInstance"), 0);
}

#[tokio::test]
async fn unknown_operations_and_routes_are_refused() {
    let emu = start(fast_config()).await;
    let (status, body) = call(
        &emu,
        "POST",
        "/",
        &sso_headers("CreatePermissionSet"),
        b"{}",
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );

    let web = vec![("Authorization", WEB_AUTH.to_string())];
    let (status, body) = call(&emu, "PUT", "/portals", &web, b"{}").await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("PUT /portals"));
    let mpa = vec![("Authorization", MPA_AUTH.to_string())];
    let (status, body) = call(&emu, "POST", "/approval-teams", &mpa, b"{}").await;
    assert_eq!(status, 404);
    assert!(body["Message"].is_string());
    let (status, _) = call(&emu, "GET", "/favicon.ico", &[], b"").await;
    assert_eq!(status, 404);

    let (status, body) = raw(
        &emu,
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=DeleteRole&Version=2011-06-15",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
}

#[tokio::test]
async fn oversized_and_random_bodies_never_take_the_emulator_down() {
    let emu = start(fast_config()).await;
    let huge = vec![b'a'; 9 * 1024 * 1024];
    let (status, _) = raw(
        &emu,
        "POST",
        "/identityProviders",
        &[("Authorization", WEB_AUTH)],
        &huge,
    )
    .await;
    assert_eq!(status, 413);

    // deterministic pseudo-random payloads against every route
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let routes: [(&str, &str, &str); 6] = [
        ("POST", "/", SSO_AUTH),
        ("POST", "/identity-sources", MPA_AUTH),
        ("POST", "/identity-sources?List", MPA_AUTH),
        ("GET", "/identity-sources/%ZZ%00", MPA_AUTH),
        ("POST", "/identityProviders", WEB_AUTH),
        ("GET", "/portals/%E2%28%A1/identityProviders", WEB_AUTH),
    ];
    for i in 0..120 {
        let len = (i * 37) % 400;
        let body: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x & 0xff) as u8
            })
            .collect();
        let (method, path, auth) = routes[i % routes.len()];
        let headers = [
            ("Authorization", auth),
            ("X-Amz-Target", "SWBExternalService.CreateInstance"),
        ];
        let (status, _) = raw(&emu, method, path, &headers, &body).await;
        assert!((400..500).contains(&status), "{method} {path}: {status}");
    }
    let (status, _) = raw(&emu, "GET", "/_emulator/health", &[], b"").await;
    assert_eq!(status, 200);
}
