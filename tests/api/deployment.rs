//! The deployment files Docker would run (CI has no Docker): they parse, name the topology
//! the README promises, and the dashboard charts metrics the code really emits.

use std::{collections::BTreeSet, fs};

use serde_json::Value;

fn read(path: &str) -> String {
    fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parsed, with YAML merge keys (`<<: *anchor`) applied as Docker Compose applies them.
fn yaml(path: &str) -> serde_norway::Value {
    let mut value: serde_norway::Value =
        serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"));
    value.apply_merge().unwrap_or_else(|e| panic!("{path}: {e}"));
    value
}

#[test]
fn compose_runs_two_replicas_behind_nginx_with_every_dependency() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for required in ["app1", "app2", "nginx", "postgres", "redis", "prometheus", "grafana"] {
        assert!(names.contains(required), "no `{required}` service");
    }
    for app in ["app1", "app2"] {
        let env = &compose["services"][app]["environment"];
        assert_eq!(env["PARLEY_ENV"].as_str(), Some("production"), "{app}");
        assert!(env["DATABASE_URL"].as_str().unwrap().starts_with("postgres://"), "{app}");
        assert!(env["REDIS_URL"].as_str().unwrap().contains("protocol=resp3"), "{app}: the adapter needs RESP3");
        assert_eq!(env["TRUST_PROXY"].as_str(), Some("true"), "{app}: behind nginx");
        assert!(
            env["JWT_SECRET"].as_str().unwrap().contains("JWT_SECRET"),
            "{app}: the secret comes from the environment"
        );
    }
    let mounted = compose["services"]["nginx"]["volumes"][0].as_str().unwrap();
    assert!(mounted.starts_with("./nginx/parley.conf:"), "{mounted}");
    for path in ["Dockerfile", "deploy/prometheus/prometheus.yml", "deploy/grafana/dashboards/parley.json"] {
        assert!(!read(path).is_empty(), "{path}");
    }
}

#[test]
fn nginx_keeps_sessions_sticky_upgrades_websockets_and_forwards_the_client() {
    let conf = read("nginx/parley.conf");
    for needle in [
        "hash $remote_addr consistent;",
        "server app1:3000",
        "server app2:3000",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_http_version 1.1;",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "location /socket.io/",
        "location = /chat/ws",
        "proxy_read_timeout 75s;",
    ] {
        assert!(conf.contains(needle), "nginx/parley.conf lacks `{needle}`");
    }
    assert_eq!(conf.matches('{').count(), conf.matches('}').count(), "unbalanced braces");
}

#[test]
fn prometheus_scrapes_both_replicas() {
    let config = yaml("deploy/prometheus/prometheus.yml");
    let targets = &config["scrape_configs"][0]["static_configs"][0]["targets"];
    let targets: Vec<&str> = targets.as_sequence().unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(targets, ["app1:3000", "app2:3000"]);
    assert_eq!(config["scrape_configs"][0]["metrics_path"].as_str(), Some("/metrics"));
    yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    yaml("deploy/grafana/provisioning/dashboards/parley.yml");
}

/// Every metric a dashboard panel queries is one the code records.
#[test]
fn the_dashboard_charts_metrics_the_code_emits() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboards/parley.json")).unwrap();
    let mut source = String::new();
    for entry in walk(&format!("{}/src", env!("CARGO_MANIFEST_DIR"))) {
        source.push_str(&fs::read_to_string(entry).unwrap());
    }
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    for panel in panels {
        let expr = panel["targets"][0]["expr"].as_str().unwrap();
        let metric = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|word| word.starts_with("parley_") || word.starts_with("http_request"))
            .unwrap_or_else(|| panic!("no metric in {expr}"));
        let base = metric.trim_end_matches("_bucket");
        assert!(source.contains(&format!("\"{base}\"")), "`{base}` is charted but never recorded");
    }
}

/// Every metric an alert rule queries is one the code records, and Prometheus loads the
/// rules (promtool checks and unit-tests them in CI: deploy/prometheus/alerts.test.yml).
#[test]
fn the_alert_rules_query_metrics_the_code_emits() {
    let config = yaml("deploy/prometheus/prometheus.yml");
    assert_eq!(config["rule_files"][0].as_str(), Some("alerts.yml"));
    let compose = read("docker-compose.yml");
    assert!(compose.contains("./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml"), "compose mounts the rules");
    let mut source = String::new();
    for entry in walk(&format!("{}/src", env!("CARGO_MANIFEST_DIR"))) {
        source.push_str(&fs::read_to_string(entry).unwrap());
    }
    let rules = yaml("deploy/prometheus/alerts.yml");
    let rules = rules["groups"][0]["rules"].as_sequence().unwrap();
    let mut names = Vec::new();
    for rule in rules {
        let name = rule["alert"].as_str().unwrap();
        names.push(name);
        let expr = rule["expr"].as_str().unwrap();
        for metric in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("parley_") || word.starts_with("http_request"))
        {
            let base = metric.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum");
            assert!(source.contains(&format!("\"{base}\"")), "{name}: `{base}` is never recorded");
        }
    }
    for expected in [
        "ParleyReplicaDown",
        "ParleyDatabaseNotReady",
        "ParleyRedisNotReady",
        "ParleyMessageLatencyHigh",
        "ParleyHttpErrorRate",
        "ParleyOutboxBacklog",
        "ParleySocketsDroppedSharply",
    ] {
        assert!(names.contains(&expected), "{expected} is missing");
    }
}

fn walk(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(path.to_str().unwrap()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
