//! The cluster group (`bench/run --only cluster`; not in the default run): three tandem nodes on
//! one Redis and on a 3-shard Redis Cluster (real `redis-server`s on loopback, AOF fsynced on
//! every write), against one node on sled in the same run. Writes
//! `bench/results/<date>-cluster.md`.
//!
//! - fan-out: one writer on node 1, readers spread over the nodes: p50/p99 propagation at a
//!   steady rate, and deliveries per second with the writer sending as fast as it can;
//! - many documents: one client per document spread over the nodes, each editing every 2 s: CPU
//!   per 1,000 updates summed over the nodes, and Redis commands per update (`INFO
//!   commandstats` summed over the shards);
//! - a node SIGKILLed under load: its writers reconnect to another node and resend their state;
//!   the time from the kill to their first acknowledged edit there, and acknowledged edits lost.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use tandem_storage::redis_testing::{Deployment, TestRedis};
use tokio::task::JoinSet;

use crate::client::{markers, Client, Writer};
use crate::peers::{self, cpu_seconds, Kind, Paths, Running, Target};
use crate::scenarios::{self, p50_p99_ms};

/// Sizes of the group's run.
pub struct Sizes {
    pub readers: usize,
    pub latency_edits: u32,
    pub rate: u32,
    pub flood_edits: u32,
    pub docs: usize,
    pub docs_duration: Duration,
    pub kill_writers: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                readers: 30,
                latency_edits: 50,
                rate: 50,
                flood_edits: 300,
                docs: 100,
                docs_duration: Duration::from_secs(4),
                kill_writers: 5,
            }
        } else {
            Sizes {
                readers: 300,
                latency_edits: 200,
                rate: 50,
                flood_edits: 2_000,
                docs: 1_000,
                docs_duration: Duration::from_secs(20),
                kill_writers: 30,
            }
        }
    }
}

/// One set-up: its nodes and the Redis they share (none: one node on sled).
struct Setup {
    name: &'static str,
    nodes: Vec<Running>,
    redis: Option<TestRedis>,
}

impl Setup {
    async fn start(deployment: Option<Deployment>, paths: &Paths) -> anyhow::Result<Setup> {
        let (name, redis, count) = match deployment {
            None => ("1 node (sled)", None, 1),
            Some(Deployment::Single) => ("3 nodes, 1 Redis", Some(Deployment::Single.start()), 3),
            Some(Deployment::Cluster) => (
                "3 nodes, 3-shard Redis Cluster",
                Some(Deployment::Cluster.start()),
                3,
            ),
        };
        let env: Vec<(&str, String)> = match redis.as_ref().map(TestRedis::flags) {
            Some(flags) if flags[0] == "--redis" => vec![("TANDEM_REDIS_URL", flags[1].clone())],
            Some(flags) => vec![("TANDEM_REDIS_CLUSTER_URLS", flags[1].clone())],
            None => Vec::new(),
        };
        let mut nodes = Vec::new();
        for _ in 0..count {
            let dir = peers::tempdir::Dir::new("tandem-bench-cluster")?;
            nodes.push(peers::start(Kind::Tandem, paths, Some(dir), &env).await?);
        }
        Ok(Setup { name, nodes, redis })
    }

    fn targets(&self) -> Vec<Target> {
        self.nodes.iter().map(Running::clone_target).collect()
    }

    fn cpu(&self) -> f64 {
        self.nodes.iter().map(|n| cpu_seconds(n.pid)).sum()
    }

    /// Commands Redis has executed so far, summed over its servers.
    fn redis_commands(&self) -> anyhow::Result<u64> {
        let Some(redis) = &self.redis else {
            return Ok(0);
        };
        let mut total = 0;
        for url in redis.urls() {
            let mut conn = redis::Client::open(url.as_str())?.get_connection()?;
            let info: String = redis::cmd("INFO").arg("commandstats").query(&mut conn)?;
            total += info
                .lines()
                .filter_map(|l| l.split("calls=").nth(1))
                .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok(total)
    }

    async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

/// Runs the group and returns its report (markdown).
pub async fn run(
    paths: &Paths,
    sizes: &Sizes,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let mut md = String::from(
        "| set-up | fan-out p50 ms | fan-out p99 ms | deliveries/s (flood) | edits/s (flood) | CPU ms / 1,000 updates (all nodes) | Redis commands / update |\n|---|---|---|---|---|---|---|\n",
    );
    for deployment in [None, Some(Deployment::Single), Some(Deployment::Cluster)] {
        let setup = Setup::start(deployment, paths).await?;
        eprintln!("cluster · {}", setup.name);
        let targets = setup.targets();
        let mut row = format!("| {} ", setup.name);
        if wanted("cluster_fanout") {
            let lat = scenarios::fanout_latencies(
                &targets[0],
                &targets,
                sizes.readers,
                sizes.latency_edits,
                sizes.rate,
            )
            .await
            .context("fan-out latency")?;
            let (p50, p99) = p50_p99_ms(&lat);
            let secs =
                scenarios::fanout_flood(&targets[0], &targets, sizes.readers, sizes.flood_edits)
                    .await
                    .context("fan-out flood")?;
            #[allow(clippy::cast_precision_loss)]
            let deliveries = f64::from(sizes.flood_edits) * sizes.readers as f64 / secs;
            let _ = write!(
                row,
                "| {p50:.1} | {p99:.1} | {deliveries:.0} | {:.0} ",
                f64::from(sizes.flood_edits) / secs
            );
        } else {
            row.push_str("| – | – | – | – ");
        }
        if wanted("cluster_docs") {
            let names: Vec<String> = (0..sizes.docs).map(|d| format!("bench/cdoc-{d}")).collect();
            let clients = scenarios::connect_spread(&targets, &names).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (cpu, commands) = (setup.cpu(), setup.redis_commands()?);
            let updates =
                scenarios::edit_every(clients, Duration::from_secs(2), sizes.docs_duration).await?;
            // Let the other nodes finish applying what they read.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cpu_ms = (setup.cpu() - cpu) * 1000.0 / updates * 1000.0;
            #[allow(clippy::cast_precision_loss)]
            let per_update = setup.redis_commands()?.saturating_sub(commands) as f64 / updates;
            if setup.redis.is_some() {
                let _ = write!(row, "| {cpu_ms:.0} | {per_update:.1} |");
            } else {
                let _ = write!(row, "| {cpu_ms:.0} | – |");
            }
        } else {
            row.push_str("| – | – |");
        }
        md.push_str(&row);
        md.push('\n');
        setup.stop().await;
    }
    if wanted("cluster_kill") {
        md.push_str("\n| set-up | writers | time to first acknowledged edit on another node, ms (max) | acknowledged edits | acknowledged edits lost |\n|---|---|---|---|---|\n");
        for deployment in [Deployment::Single, Deployment::Cluster] {
            let setup = Setup::start(Some(deployment), paths).await?;
            eprintln!("cluster kill · {}", setup.name);
            let (failover_ms, acked, lost) = kill_under_load(setup, sizes.kill_writers).await?;
            let name = match deployment {
                Deployment::Single => "3 nodes, 1 Redis",
                Deployment::Cluster => "3 nodes, 3-shard Redis Cluster",
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {failover_ms:.0} | {acked} | {lost} |",
                sizes.kill_writers
            );
        }
    }
    Ok(md)
}

/// One writer's run: its edits acknowledged before the kill (echoed by the node), and when it
/// had its first edit acknowledged on the other node.
struct WriterRun {
    acked: Vec<u32>,
    failover: Duration,
}

/// `writers` writers on node 3 edit their own documents every 20 ms; node 3 is SIGKILLed after
/// 2 s; each writer reconnects to node 1, resends its state and edits on. Returns the slowest
/// time from the kill to a writer's first acknowledged edit on node 1, the edits acknowledged
/// before the kill, and how many of those a fresh client on node 2 does not find.
async fn kill_under_load(mut setup: Setup, writers: usize) -> anyhow::Result<(f64, usize, usize)> {
    let targets = setup.targets();
    let victim = setup.nodes.remove(2);
    let killed_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut set = JoinSet::new();
    for w in 0..writers {
        let doc = format!("bench/kill-{w}");
        let (on, to) = (targets[2].clone(), targets[0].clone());
        let killed_at = std::sync::Arc::clone(&killed_at);
        set.spawn(async move {
            let mut writer = Writer::new();
            let mut client = Client::connect(&on, &doc).await?;
            let mut acked = Vec::new();
            let mut seq = 0u32;
            let mut found = Vec::new();
            // Edit until the node goes away; an echo is the acknowledgement.
            'edit: loop {
                client.send(writer.edit(seq)).await?;
                seq += 1;
                let pause = tokio::time::sleep(Duration::from_millis(20));
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        frame = client.next_binary() => match frame {
                            Ok(frame) => { found.clear(); markers(&frame, &mut found); acked.extend(&found); }
                            Err(_) => break 'edit,
                        },
                    }
                }
                anyhow::ensure!(seq < 100_000, "the node was never killed");
            }
            // Reconnect elsewhere, resend everything, edit on until the first new edit is echoed.
            let mut client = Client::connect(&to, &doc).await?;
            client.send(writer.state()).await?;
            let first = seq;
            client.send(writer.edit(first)).await?;
            loop {
                let frame = tokio::time::timeout(scenarios::STEP_TIMEOUT, client.next_binary()).await??;
                found.clear();
                markers(&frame, &mut found);
                if found.contains(&first) {
                    break;
                }
            }
            let at = killed_at
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .context("kill time")?;
            anyhow::Ok((doc, WriterRun { acked, failover: at.elapsed() }))
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    *killed_at.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(Instant::now());
    victim.stop().await; // SIGKILL
    let mut slowest = Duration::ZERO;
    let (mut acked_total, mut lost) = (0, 0);
    while let Some(r) = set.join_next().await {
        let (doc, run) = r??;
        slowest = slowest.max(run.failover);
        // What a fresh client on a third node loads: the acknowledged edits must all be there.
        let mut reader = Client::connect(&targets[1], &doc).await?;
        reader
            .send(tandem_crdt_model::protocol::encode_sync_step1(
                &yrs::StateVector::default(),
            ))
            .await?;
        let mut present = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Ok(Ok(frame)) =
                tokio::time::timeout(Duration::from_millis(300), reader.next_binary()).await
            else {
                break;
            };
            markers(&frame, &mut present);
        }
        acked_total += run.acked.len();
        lost += run.acked.iter().filter(|s| !present.contains(s)).count();
    }
    setup.stop().await;
    Ok((slowest.as_secs_f64() * 1000.0, acked_total, lost))
}
