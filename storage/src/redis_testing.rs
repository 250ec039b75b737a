//! Real `redis-server`s for tests (feature `redis-testing`): one server, or a 3-shard Redis
//! Cluster, on free loopback ports in temporary directories, killed when dropped. Shared by
//! this crate's tests and the server's, so both run the same cases on both deployments.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_store::RedisTarget;

/// Which deployment a parameterized test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Single,
    Cluster,
}

impl Deployment {
    pub const ALL: [Deployment; 2] = [Deployment::Single, Deployment::Cluster];

    pub fn start(self) -> TestRedis {
        match self {
            Deployment::Single => TestRedis::single(),
            Deployment::Cluster => TestRedis::cluster(3),
        }
    }
}

/// Running `redis-server`s, killed (and their directories removed) when dropped.
pub struct TestRedis {
    children: Vec<Child>,
    ports: Vec<u16>,
    cluster: bool,
    _dir: tempfile::TempDir,
}

/// A port free now on 127.0.0.1. A cluster node also listens on port + 10000 (its bus), so
/// ports are picked low enough for that to exist.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Starts `redis-server` on `port` with its files (AOF, fsynced on every write) in `dir`.
/// `extra` adds flags (cluster mode).
pub fn spawn_redis(port: u16, dir: &Path, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (Debian package redis-server)")
}

/// Waits (at most 20 s) until the `redis-server` on `port` answers.
pub fn wait_ready(port: u16) {
    wait_until("redis-server did not start", || ping(port));
}

fn ping(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl TestRedis {
    pub fn single() -> TestRedis {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = spawn_redis(port, dir.path(), &[]);
        wait_ready(port);
        TestRedis {
            children: vec![child],
            ports: vec![port],
            cluster: false,
            _dir: dir,
        }
    }

    /// `shards` masters without replicas, every slot assigned, `cluster_state:ok` on each.
    pub fn cluster(shards: usize) -> TestRedis {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..shards {
            let port = free_port();
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).expect("node dir");
            let conf = format!("nodes-{port}.conf");
            children.push(spawn_redis(
                port,
                &node_dir,
                &["--cluster-enabled", "yes", "--cluster-config-file", &conf],
            ));
            ports.push(port);
        }
        let redis = TestRedis {
            children,
            ports,
            cluster: true,
            _dir: dir,
        };
        for &port in &redis.ports {
            wait_ready(port);
        }
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(redis.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli must be installed (Debian package redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        for &port in &redis.ports {
            wait_until("the cluster did not reach cluster_state:ok", || {
                redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
        }
        redis
    }

    /// What the store (and `--redis` / `--redis-cluster`) is given.
    pub fn target(&self) -> RedisTarget {
        if self.cluster {
            RedisTarget::Cluster(self.urls())
        } else {
            RedisTarget::Single(self.urls().remove(0))
        }
    }

    /// Every server's URL (for a cluster: the seed nodes).
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// A connection for a test to look at or tamper with keys directly.
    pub fn connect(&self) -> crate::redis_store::RedisConn {
        self.target()
            .client()
            .and_then(|c| c.connection())
            .expect("connects")
    }

    /// The command-line flags that point a node at these servers.
    pub fn flags(&self) -> Vec<String> {
        if self.cluster {
            vec!["--redis-cluster".into(), self.urls().join(",")]
        } else {
            vec!["--redis".into(), self.urls().remove(0)]
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
