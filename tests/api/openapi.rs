//! The OpenAPI document committed under `openapi/` is the one the code generates.
//! Regenerate with `cargo run -- openapi > openapi/openapi.json`.

#[test]
fn committed_openapi_matches_the_code() {
    let generated = parley::http::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(path, &generated).expect("write openapi/openapi.json");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_is_documented_with_its_errors() {
    let spec: serde_json::Value = serde_json::from_str(&parley::http::openapi_json()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["tags"].is_array(), "{method} {path} has no tag");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            let needs_auth = op.get("security").is_some_and(|s| s.to_string().contains("bearerAuth"));
            let optional = op.get("security").is_some_and(|s| s.to_string().contains("{}"));
            if needs_auth && !optional {
                assert!(op["responses"].get("401").is_some(), "{method} {path} lacks its 401");
            }
        }
    }
}
