//! The HTTP edges: every failure in the SPEC error shape, body limits, request ids, CORS,
//! health probes and metrics.

use reqwest::Method;
use serde_json::json;

use crate::in_both_modes;
use crate::support::{Mode, TestApp, http::PASSWORD};

in_both_modes!(
    malformed_json_is_a_validation_error_that_changes_nothing,
    a_body_that_is_not_json_is_415,
    an_oversize_body_is_413,
    unknown_routes_and_methods_answer_in_the_error_shape,
    request_ids_are_generated_or_propagated,
    cors_admits_configured_origins_with_credentials,
    health_reports_every_dependency,
    metrics_label_requests_by_matched_route,
    openapi_and_swagger_ui_are_served,
    nul_characters_are_validation_errors_not_500s,
    half_a_surrogate_pair_is_refused_naming_the_field,
);

/// Half an emoji (`"😀".slice(0, 1)`, which `JSON.stringify` writes as `"\ud83d"`) is JSON
/// but no Unicode text: refused as a validation error naming the field (as on sockets).
async fn half_a_surrogate_pair_is_refused_naming_the_field(app: TestApp) {
    let anon = app.client();
    let body = r#"{"email":"half@example.com","password":"correct horse battery","displayName":"Ann \ud83d"}"#;
    let request =
        anon.request(Method::POST, "/api/auth/register").header("content-type", "application/json").body(body);
    let reply = anon.send(request).await;
    assert_eq!(reply.status.as_u16(), 400, "{}", reply.body);
    assert_eq!(reply.code(), "VALIDATION_ERROR");
    assert_eq!(reply.body["error"]["details"]["field"], "displayName", "{}", reply.body);
    assert!(reply.body["error"]["message"].as_str().unwrap().contains("surrogate"), "{}", reply.body);
    // Nothing was created: the same address registers fine with whole characters.
    let whole = json!({"email": "half@example.com", "password": "correct horse battery", "displayName": "Ann 😀"});
    assert_eq!(anon.post("/api/auth/register", whole).await.status.as_u16(), 201);
}

async fn malformed_json_is_a_validation_error_that_changes_nothing(app: TestApp) {
    let anon = app.client();
    for raw in [
        "{",
        "{\"email\": }",
        "[]",
        "null",
        "\"text\"",
        "{\"email\":\"m@example.com\",\"password\":\"correct horse\",\"displayName\":\"Em\"",
        "",
    ] {
        let request = anon
            .request(Method::POST, "/api/auth/register")
            .header("content-type", "application/json")
            .body(raw.to_owned());
        let reply = anon.send(request).await;
        assert_eq!(reply.status.as_u16(), 400, "{raw:?} → {}", reply.body);
        assert_eq!(reply.code(), "VALIDATION_ERROR", "{raw:?}");
    }
    anon.post("/api/auth/login", json!({"email": "m@example.com", "password": "correct horse"}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

async fn a_body_that_is_not_json_is_415(app: TestApp) {
    let anon = app.client();
    let request = anon
        .request(Method::POST, "/api/auth/login")
        .header("content-type", "text/plain")
        .body(r#"{"email":"a@example.com","password":"x"}"#);
    anon.send(request).await.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let no_type = anon.request(Method::POST, "/api/auth/login").body("{}");
    anon.send(no_type).await.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
}

async fn an_oversize_body_is_413(app: TestApp) {
    let anon = app.client();
    let huge = "x".repeat(130 * 1024);
    let register = json!({"email": "big@example.com", "password": PASSWORD, "displayName": huge});
    oversize_is_refused(|| anon.request(Method::POST, "/api/auth/register").json(&register)).await;
    oversize_is_refused(|| anon.request(Method::POST, "/api/auth/refresh").body(huge.clone())).await;
    // Far over the limit (2 MiB): still a clean 413, not a reset connection.
    let upload = "y".repeat(2 * 1024 * 1024);
    oversize_is_refused(|| anon.request(Method::POST, "/api/auth/refresh").body(upload.clone())).await;
    anon.post("/api/auth/login", json!({"email": "big@example.com", "password": PASSWORD}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

/// Every attempt gets the 413 in the SPEC error shape: the server answers before reading the
/// body and then reads the rest of it, so the connection is not reset under the answer.
pub(crate) async fn oversize_is_refused(request: impl Fn() -> reqwest::RequestBuilder) {
    for attempt in 0..5 {
        let response = request().send().await.unwrap_or_else(|e| panic!("attempt {attempt}: no answer: {e}"));
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
    }
}

async fn unknown_routes_and_methods_answer_in_the_error_shape(app: TestApp) {
    let anon = app.client();
    anon.get("/api/nothing-here").await.assert_error(404, "NOT_FOUND");
    anon.get("/").await.assert_error(404, "NOT_FOUND");
    anon.delete("/api/auth/login").await.assert_error(405, "METHOD_NOT_ALLOWED");
    anon.post("/health/live", json!({})).await.assert_error(405, "METHOD_NOT_ALLOWED");
}

async fn request_ids_are_generated_or_propagated(app: TestApp) {
    let anon = app.client();
    let generated = anon.get("/health/live").await;
    let id = generated.header("x-request-id").expect("a generated request id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let given = anon.send(anon.request(Method::GET, "/health/live").header("x-request-id", "trace-me-42")).await;
    assert_eq!(given.header("x-request-id"), Some("trace-me-42"));
    let failed = anon.get("/api/auth/me").await;
    assert!(failed.header("x-request-id").is_some(), "errors carry the id too");
}

async fn cors_admits_configured_origins_with_credentials(app: TestApp) {
    let anon = app.client();
    let preflight = anon
        .request(Method::OPTIONS, "/api/auth/login")
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,authorization");
    let reply = anon.send(preflight).await;
    assert!(reply.status.is_success(), "{:?}", reply.status);
    assert_eq!(reply.header("access-control-allow-origin"), Some("http://localhost:5173"));
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));

    let foreign = anon
        .request(Method::OPTIONS, "/api/auth/login")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST");
    let reply = anon.send(foreign).await;
    assert!(reply.header("access-control-allow-origin").is_none());

    // Socket.IO long-polling goes through the same edge.
    let polling =
        |origin: &str| anon.request(Method::GET, "/socket.io/?EIO=4&transport=polling").header("origin", origin);
    let reply = anon.send(polling("http://localhost:5173")).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some("http://localhost:5173"));
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    let reply = anon.send(polling("https://evil.example")).await;
    assert!(reply.header("access-control-allow-origin").is_none());
}

async fn health_reports_every_dependency(app: TestApp) {
    let anon = app.client();
    let live = anon.get("/health/live").await;
    assert_eq!(live.assert_status(200)["status"], "alive");
    assert!(live.body["instance"].is_string());
    let ready = anon.get("/health/ready").await;
    let redis = if app.mode == Mode::Embedded { "disabled" } else { "ok" };
    assert_eq!(*ready.assert_status(200), json!({"status": "ready", "checks": {"database": "ok", "redis": redis}}));
    // The same checks, as gauges for the alert rules (deploy/prometheus/alerts.yml).
    let scrape = anon.get("/metrics").await;
    let text = scrape.body.as_str().expect("text exposition");
    assert!(text.contains("parley_dependency_up{dependency=\"database\"} 1"), "{text}");
    if app.mode != Mode::Embedded {
        assert!(text.contains("parley_dependency_up{dependency=\"redis\"} 1"), "{text}");
    }
}

async fn metrics_label_requests_by_matched_route(app: TestApp) {
    let user = app.register("Metric").await;
    user.client.get(&format!("/api/users/{}", user.id)).await.assert_status(200);
    let text = app.client().get("/metrics").await;
    let text = text.body.as_str().expect("text exposition");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"route="/api/users/{id}""#), "route label missing");
    assert!(!text.contains(&user.id.to_string()), "raw ids must not become labels");
}

async fn openapi_and_swagger_ui_are_served(app: TestApp) {
    let anon = app.client();
    let spec = anon.get("/api/openapi.json").await;
    let body = spec.assert_status(200);
    assert!(body["openapi"].as_str().unwrap().starts_with("3."));
    assert!(body["paths"]["/api/auth/register"]["post"].is_object());
    let ui = anon.get("/api/docs/").await;
    assert_eq!(ui.status.as_u16(), 200);
    assert!(ui.body.as_str().unwrap_or_default().contains("swagger-ui"), "Swagger UI page expected");
}

mod every_route {
    use reqwest::Method;
    use serde_json::Value;

    use crate::support::{Mode, TestApp};

    /// Every operation of the OpenAPI document with a JSON body, with `{id}` filled in.
    fn json_operations(spec: &Value, id: &str) -> Vec<(Method, String)> {
        let mut operations = Vec::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                // Uploads take any bytes (tests/api/uploads.rs); this is about JSON bodies.
                if op["requestBody"]["content"].get("application/json").is_some() {
                    let path = path.replace("{id}", id).replace("{messageId}", &uuid::Uuid::now_v7().to_string());
                    operations.push((method.to_uppercase().parse().unwrap(), path));
                }
            }
        }
        assert!(operations.len() >= 7, "expected the documented JSON routes, got {operations:?}");
        operations
    }

    /// Malformed, mistyped and oversize bodies on every JSON route, authenticated: each is a
    /// 4xx in the SPEC shape, and afterwards the user's profile and settings are unchanged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_bodies_on_every_json_route_are_4xx_and_change_nothing() {
        let app = TestApp::spawn(Mode::Embedded).await;
        let user = app.register("Prober").await;
        let other = app.register("Other").await;
        let before = (user.client.get("/api/auth/me").await.body, user.client.get("/api/users/me/settings").await.body);
        let spec = app.client().get("/api/openapi.json").await.body;
        let huge = format!("{{\"displayName\":\"{}\"}}", "x".repeat(130 * 1024));
        let bodies: [(&str, &str, &[u16]); 4] = [
            ("application/json", "{not json", &[400, 401]),
            ("application/json", "[1,2,3]", &[400, 401]),
            (
                "application/json",
                r#"{"email":7,"password":[],"displayName":{},"username":1,"avatarUrl":2,"showLastSeen":"x","presenceSharing":9,"readReceiptsEnabled":"y","show_last_seen":"z","refreshToken":5}"#,
                &[400, 401],
            ),
            ("text/plain", "hello", &[400, 401, 415]),
        ];
        for (method, path) in json_operations(&spec, &other.id.to_string()) {
            for (content_type, body, expected) in bodies {
                let request = user
                    .client
                    .request(method.clone(), &path)
                    .header("content-type", content_type)
                    .body(body.to_owned());
                let reply = user.client.send(request).await;
                let status = reply.status.as_u16();
                assert!(
                    expected.contains(&status),
                    "{method} {path} with {content_type} {:.40}: {status} {}",
                    body,
                    reply.body
                );
                assert!(!reply.code().is_empty(), "{method} {path}: not the SPEC error shape: {}", reply.body);
            }
            let oversize = || {
                user.client.request(method.clone(), &path).header("content-type", "application/json").body(huge.clone())
            };
            super::oversize_is_refused(oversize).await;
        }
        let after = (user.client.get("/api/auth/me").await.body, user.client.get("/api/users/me/settings").await.body);
        assert_eq!(before, after);
        user.client.get("/api/auth/me").await.assert_status(200);
    }
}

/// U+0000 in text PostgreSQL would store or compare (found by fuzzing, issue 8): each was a
/// 500 there, and a NUL message failed its whole group commit. Now refused, or matching
/// nobody, in both modes.
async fn nul_characters_are_validation_errors_not_500s(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let reply = ann
        .client
        .post("/api/conversations", json!({"type": "group", "title": "Crew", "participantIds": [bob.id]}))
        .await;
    let group = reply.assert_status(201)["id"].as_str().expect("conversation id").to_owned();
    let messages = format!("/api/conversations/{group}/messages");
    let file = |media: serde_json::Value| json!({"content": "f", "clientMessageId": "m", "contentType": "file", "media": media});
    for body in [
        json!({"content": "a\u{0}b", "clientMessageId": "nul-1"}),
        file(json!([{"url": "https://cdn.example/\u{0}"}])),
        file(json!([{"url": "https://cdn.example/a", "name": "a\u{0}"}])),
    ] {
        ann.client.post(&messages, body).await.assert_error(400, "VALIDATION_ERROR");
    }
    ann.client.get("/api/users?query=a%00b").await.assert_error(400, "VALIDATION_ERROR");
    ann.client
        .patch("/api/users/me", json!({"avatarUrl": "https://cdn.example/\u{0}"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    app.client()
        .post("/api/auth/login", json!({"email": "a\u{0}@example.com", "password": PASSWORD}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // The conversation still takes messages: nothing was left half-written.
    ann.client.post(&messages, json!({"content": "after", "clientMessageId": "ok-1"})).await.assert_status(201);
}
