//! Two replicas on a Redis of their own, which is killed and restarted: delivery on each
//! replica goes on while it is down, readiness says so, and broadcasts between replicas
//! work again within 10 s of its return — without restarting Parley.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{Mode, TestApp, postgres_available};
use crate::{WAIT, connect, group, send};

/// A throwaway redis-server on its own port.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { port, child: None, dir: tempfile::tempdir().unwrap() };
        redis.launch();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get_connection().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::yield_now();
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_a_redis_restart() {
    if !postgres_available().await {
        return;
    }
    let mut redis = OwnRedis::start();
    let app = TestApp::try_spawn_with(Mode::Replicated, &[("REDIS_URL", &redis.url())]).await.unwrap();
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    // Sockets alternate: ann's first on replica 1, bob's on replica 2, ann's second on 1.
    let ann_sender = connect(&app, &ann).await;
    let bob_socket = connect(&app, &bob).await;
    let ann_other = connect(&app, &ann).await;
    send(&ann_sender, conversation, "before", "across replicas").await;
    assert_eq!(bob_socket.expect_event("message:received", WAIT).await["message"]["content"], "across replicas");
    ann_other.expect_event("message:received", WAIT).await;

    redis.kill();
    let ready = app.client().get("/health/ready").await;
    assert_eq!(ready.status.as_u16(), 503, "{}", ready.body);
    assert_eq!(ready.body["checks"]["redis"], "error");
    assert_eq!(dependency_up(&app, "redis").await, Some(0.0), "the alert rules see Redis down");
    assert_eq!(dependency_up(&app, "database").await, Some(1.0));
    let ack = send(&ann_sender, conversation, "during", "redis is down").await;
    assert_eq!(ack["ok"], true, "{ack}");
    let local = ann_other.expect_event("message:received", WAIT).await;
    assert_eq!(local["message"]["content"], "redis is down", "same-replica delivery keeps working");

    redis.launch();
    let restarted = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        send(&ann_sender, conversation, &format!("after-{attempt}"), "back").await;
        if let Some(received) = bob_socket.next_event("message:received", Duration::from_millis(500)).await
            && received["message"]["content"] == "back"
        {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(10), "broadcasts did not recover within 10 s");
    }
    eprintln!("cross-replica broadcasts recovered {:?} after Redis restarted", restarted.elapsed());
    let ready = app.client().get("/health/ready").await;
    assert_eq!(ready.assert_status(200)["checks"]["redis"], "ok");
    assert_eq!(dependency_up(&app, "redis").await, Some(1.0));
}

/// `parley_dependency_up{dependency}` as the replica's `/metrics` shows it now.
async fn dependency_up(app: &TestApp, dependency: &str) -> Option<f64> {
    let scrape = app.client().get("/metrics").await;
    let prefix = format!("parley_dependency_up{{dependency=\"{dependency}\"}} ");
    let text = scrape.body.as_str().unwrap_or_default();
    text.lines().find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
}
