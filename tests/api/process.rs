//! The `parley` binary as an operator runs it: start-up errors, JSON logs, SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

fn parley() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn production_mode_without_a_jwt_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        parley().env("PARLEY_ENV", "production").env("PARLEY_DATA_DIR", dir.path()).output().expect("run parley");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET is required"), "{stderr}");
}

#[test]
fn unknown_commands_are_a_usage_error() {
    let output = parley().arg("frobnicate").output().expect("run parley");
    assert_eq!(output.status.code(), Some(2));
}

/// Starts the binary in embedded mode with JSON logs, waits for its "listening" line, sends
/// SIGTERM and expects a clean exit well within the SPEC's 10 s.
#[test]
fn sigterm_stops_the_server_cleanly_and_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = parley()
        .env("PARLEY_DATA_DIR", dir.path())
        .env("PARLEY_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start parley");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let listening = lines.by_ref().map_while(Result::ok).find(|line| {
        seen.push(line.clone());
        line.contains("listening")
    });
    assert!(listening.is_some(), "no `listening` line; output: {seen:?}");
    for line in &seen {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed["level"].is_string() && parsed["fields"].is_object(), "{line}");
    }
    assert!(dir.path().join("parley.db").exists(), "the SQLite file is created");
    assert!(dir.path().join("jwt_secret").exists(), "the secret is generated into the data dir");

    let pid = child.id().to_string();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait()));
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status =
        exit.recv_timeout(Duration::from_secs(10)).expect("still running 10 s after SIGTERM").expect("wait for parley");
    assert!(status.success(), "exit status {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM received")), "{rest:?}");
}
