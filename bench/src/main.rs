//! `tandem-bench`: the same scenarios against tandem, the y-websocket reference server and
//! Hocuspocus, on this machine, in one run; servers alternate (A B C A B C) so drift hits them
//! alike. Writes `bench/results/<date>.md` (scenario × server, ratios to tandem) and `.json`.
//!
//! Start it with `bench/run` (builds tandem in release mode, raises the file limit).

mod burst;
mod client;
mod cluster;
mod peers;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::peers::{Kind, Paths};
use crate::report::{Run, Sample};

#[derive(Parser)]
#[command(
    name = "tandem-bench",
    about = "Compare tandem with the y-websocket server and Hocuspocus"
)]
struct Args {
    /// A small run (under 5 minutes) that keeps the tool working in CI; its figures mean little.
    #[arg(long)]
    quick: bool,
    /// Repetitions of each scenario per server (medians are reported).
    #[arg(long)]
    rounds: Option<usize>,
    /// The tandem binary to measure.
    #[arg(long, default_value = "target/release/tandem")]
    tandem_bin: PathBuf,
    /// Where the peers' package.json and node_modules are.
    #[arg(long, default_value = "bench/peers")]
    peers_dir: PathBuf,
    /// Where the editing traces are (see ../shared/data/README.md); never copied.
    #[arg(long, default_value = "../shared/data")]
    trace_dir: PathBuf,
    /// Where results are written.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// Only these scenarios (comma-separated names), for profiling one at a time. `cluster` (or
    /// `cluster_fanout`, `cluster_docs`, `cluster_kill`) runs the cluster group, which is not
    /// part of the default run (it starts real redis-servers and takes minutes).
    #[arg(long)]
    only: Option<String>,
}

/// Sizes of one run.
struct Plan {
    rounds: usize,
    fanout_readers: Vec<usize>,
    fanout_edits: u32,
    fanout_rate: u32,
    throughput_readers: usize,
    throughput_edits: u32,
    burst_readers: Vec<usize>,
    burst_edits: u32,
    many_docs: usize,
    many_every: Duration,
    many_duration: Duration,
    idle: Vec<usize>,
    trace_edits: Option<usize>,
    durable_writers: usize,
    durable_duration: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                rounds: 1,
                fanout_readers: vec![10, 100],
                fanout_edits: 50,
                fanout_rate: 50,
                throughput_readers: 20,
                throughput_edits: 500,
                burst_readers: vec![20],
                burst_edits: 500,
                many_docs: 50,
                many_every: Duration::from_millis(500),
                many_duration: Duration::from_secs(3),
                idle: vec![500],
                trace_edits: Some(5_000),
                durable_writers: 4,
                durable_duration: Duration::from_secs(2),
            }
        } else {
            Plan {
                rounds: 3,
                fanout_readers: vec![10, 100, 500],
                fanout_edits: 200,
                fanout_rate: 50,
                throughput_readers: 100,
                throughput_edits: 5_000,
                burst_readers: vec![50, 200],
                burst_edits: 2_000,
                many_docs: 1_000,
                many_every: Duration::from_secs(2),
                many_duration: Duration::from_secs(20),
                idle: vec![2_000, 10_000],
                trace_edits: None,
                durable_writers: 8,
                durable_duration: Duration::from_secs(10),
            }
        }
    }
}

const SERVERS: [Kind; 4] = [
    Kind::Tandem,
    Kind::TandemHocuspocus,
    Kind::YWebsocket,
    Kind::Hocuspocus,
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut plan = Plan::new(args.quick);
    if let Some(r) = args.rounds {
        plan.rounds = r.max(1);
    }
    let paths = Paths {
        tandem_bin: args.tandem_bin.clone(),
        peers_dir: args.peers_dir.clone(),
    };
    anyhow::ensure!(
        paths.tandem_bin.is_file(),
        "no tandem binary at {} (cargo build --release -p tandem)",
        paths.tandem_bin.display()
    );
    let wanted = |name: &str| {
        args.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == name))
    };
    let started = Instant::now();
    let cpu_start = peers::cpu_seconds(std::process::id());
    let mut run = Run::new(args.quick);
    let cluster_wanted = |name: &str| {
        args.only
            .as_deref()
            .is_some_and(|o| o.split(',').any(|x| x == "cluster" || x == name))
    };
    if ["cluster_fanout", "cluster_docs", "cluster_kill"]
        .iter()
        .any(|n| cluster_wanted(n))
    {
        let sizes = cluster::Sizes::new(args.quick);
        let table = cluster::run(&paths, &sizes, cluster_wanted).await?;
        let path = args.out_dir.join(format!("{}-cluster.md", run.date));
        std::fs::create_dir_all(&args.out_dir)?;
        std::fs::write(
            &path,
            format!(
                "# Cluster benchmark, {}\n\n{} readers, {} edits at {}/s (latency), {} edits flooded; {} documents for {} s; {} writers on the killed node.\n\n{table}",
                run.date,
                sizes.readers,
                sizes.latency_edits,
                sizes.rate,
                sizes.flood_edits,
                sizes.docs,
                sizes.docs_duration.as_secs(),
                sizes.kill_writers
            ),
        )?;
        println!("results: {}", path.display());
        println!("{table}");
        return Ok(());
    }

    for round in 0..plan.rounds {
        for kind in SERVERS {
            for &n in &plan.fanout_readers {
                let name = format!("fanout_latency_n{n}");
                if wanted(&name) {
                    let (edits, rate) = (plan.fanout_edits, plan.fanout_rate);
                    let s = measure(kind, &paths, &name, round, |srv| async move {
                        scenarios::fanout_latency(&srv, n, edits, rate)
                            .await
                            .map(|f| (srv, f))
                    })
                    .await;
                    run.record(s);
                }
            }
            if wanted("fanout_throughput") {
                let (r, e) = (plan.throughput_readers, plan.throughput_edits);
                let s = measure(kind, &paths, "fanout_throughput", round, |srv| async move {
                    scenarios::fanout_throughput(&srv, r, e)
                        .await
                        .map(|f| (srv, f))
                })
                .await;
                run.record(s);
            }
            for &n in &plan.burst_readers {
                let name = format!("burst_n{n}");
                if wanted(&name) {
                    let edits = plan.burst_edits;
                    let s = measure(kind, &paths, &name, round, |srv| async move {
                        burst::burst(&srv, n, edits).await.map(|f| (srv, f))
                    })
                    .await;
                    run.record(s);
                }
            }
            if wanted("many_documents") {
                let (d, every, dur) = (plan.many_docs, plan.many_every, plan.many_duration);
                let s = measure(kind, &paths, "many_documents", round, |srv| async move {
                    scenarios::many_documents(&srv, d, 4, every, dur)
                        .await
                        .map(|f| (srv, f))
                })
                .await;
                run.record(s);
            }
            for &n in &plan.idle {
                let name = format!("idle_n{n}");
                if wanted(&name) {
                    let s = measure(kind, &paths, &name, round, |srv| async move {
                        scenarios::idle(&srv, n).await.map(|f| (srv, f))
                    })
                    .await;
                    run.record(s);
                }
            }
        }
        // Persistence scenarios: only servers that persist every update take part.
        if round == 0 && wanted("cold_load") {
            let (figures, source) = cold_load(&paths, &args.trace_dir, plan.trace_edits).await?;
            run.notes.push(format!("Cold-load trace: {source}."));
            run.samples
                .push(Sample::new(Kind::Tandem, "cold_load", round, figures));
        }
        if wanted("durable_writes") {
            let (w, d) = (plan.durable_writers, plan.durable_duration);
            let s = measure(
                Kind::Tandem,
                &paths,
                "durable_writes",
                round,
                |srv| async move {
                    scenarios::durable_writes(&srv, w, d)
                        .await
                        .map(|f| (srv, f))
                },
            )
            .await;
            run.record(s);
        }
    }
    run.generator_cpu_s = peers::cpu_seconds(std::process::id()) - cpu_start;
    run.wall_s = started.elapsed().as_secs_f64();
    let (md, json) = run.write(&args.out_dir)?;
    println!("results: {} and {}", md.display(), json.display());
    Ok(())
}

/// Starts `kind` alone, runs one scenario on it, stops it.
async fn measure<F, Fut>(
    kind: Kind,
    paths: &Paths,
    scenario: &str,
    round: usize,
    body: F,
) -> anyhow::Result<Sample>
where
    F: FnOnce(peers::Running) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(peers::Running, scenarios::Figures)>>,
{
    let dir = peers::tempdir::Dir::new("tandem-bench")?;
    let server = peers::start(kind, paths, Some(dir), &[]).await?;
    let gen_cpu = peers::cpu_seconds(std::process::id());
    let started = Instant::now();
    eprintln!("{scenario} · {} · round {}", kind.name(), round + 1);
    let (server, mut figures) = body(server)
        .await
        .with_context(|| format!("{scenario} on {}", kind.name()))?;
    let wall = started.elapsed().as_secs_f64();
    figures.insert(
        "generator_cpu_share".into(),
        (peers::cpu_seconds(std::process::id()) - gen_cpu) / wall.max(1e-9),
    );
    server.stop().await;
    Ok(Sample::new(kind, scenario, round, figures))
}

/// Stores the trace one update per edit in tandem (compaction off), then measures a cold open
/// before and after compacting, with the bytes on disk each time.
async fn cold_load(
    paths: &Paths,
    trace_dir: &std::path::Path,
    limit: Option<usize>,
) -> anyhow::Result<(scenarios::Figures, String)> {
    let (updates, mut source) = scenarios::trace_updates(trace_dir, limit);
    if let Some(n) = limit {
        source = format!("{source}, first {n} edits (quick mode)");
    }
    let dir = peers::tempdir::Dir::new("tandem-bench-trace")?;
    let data = dir.path().to_path_buf();
    let no_compaction = [("TANDEM_COMPACT_AFTER_UPDATES", "1000000000".to_string())];
    let server = peers::start(Kind::Tandem, paths, Some(dir), &no_compaction).await?;
    let doc = "bench/trace";
    let writer = client::Client::connect(&server.clone_target(), doc).await?;
    // Echoes are read while sending: a client that never reads is closed as a slow consumer.
    // tandem merges the echoes of one group commit, so they cannot be counted one per update:
    // a SyncStep1 sent after the last update is answered (SyncStep2) only once everything
    // before it is durable. The first SyncStep2 answers the one `connect` sent.
    let (mut sink, mut stream) = futures_util::StreamExt::split(writer.socket);
    let last = updates.len();
    let acks = tokio::spawn(async move {
        let mut answers = 0;
        while answers < 2 {
            match tokio::time::timeout(
                Duration::from_secs(300),
                futures_util::StreamExt::next(&mut stream),
            )
            .await
            {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(b))))
                    if b.starts_with(&[0, 1]) =>
                {
                    answers += 1;
                }
                Ok(Some(Ok(_))) => {}
                _ => anyhow::bail!("the trace upload of {last} updates was not acknowledged"),
            }
        }
        anyhow::Ok(())
    });
    let sync_step1 = tandem_crdt_model::protocol::encode_sync_step1(&yrs::StateVector::default());
    for frame in updates
        .iter()
        .map(|u| tandem_crdt_model::protocol::encode_update(u))
        .chain([sync_step1])
    {
        futures_util::SinkExt::send(
            &mut sink,
            tokio_tungstenite::tungstenite::Message::binary(frame),
        )
        .await?;
    }
    acks.await??;
    let writer = sink;
    drop(writer);
    // Stop without removing the data: the directory moves to the next process.
    let dir = stop_keep(server).await;
    let before_bytes = peers::disk_bytes(&data);
    let server = peers::start(Kind::Tandem, paths, dir, &no_compaction).await?;
    let (before_ms, sync_bytes) = scenarios::cold_open(&server, doc).await?;
    let dir = stop_keep(server).await;
    // Compaction on (the default threshold) and one more edit to trigger it.
    let server = peers::start(Kind::Tandem, paths, dir, &[]).await?;
    let mut c = client::Client::connect(&server.clone_target(), doc).await?;
    let mut w = client::Writer::new();
    c.send(w.edit(0)).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while scenarios::metric(&server, "tandem_compactions_total")
        .await
        .unwrap_or(0.0)
        < 1.0
    {
        anyhow::ensure!(Instant::now() < deadline, "compaction did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(c);
    let dir = stop_keep(server).await;
    let after_bytes = peers::disk_bytes(&data);
    let server = peers::start(Kind::Tandem, paths, dir, &[]).await?;
    let (after_ms, _) = scenarios::cold_open(&server, doc).await?;
    server.stop().await;
    #[allow(clippy::cast_precision_loss)]
    let figures = scenarios::Figures::from([
        ("edits".into(), last as f64),
        ("open_ms_before_compaction".into(), before_ms),
        ("open_ms_after_compaction".into(), after_ms),
        (
            "disk_mib_before_compaction".into(),
            before_bytes as f64 / 1048576.0,
        ),
        (
            "disk_mib_after_compaction".into(),
            after_bytes as f64 / 1048576.0,
        ),
        ("sync_step2_kib".into(), sync_bytes as f64 / 1024.0),
    ]);
    Ok((figures, source))
}

/// Stops a server but keeps its data directory for the next one.
async fn stop_keep(mut server: peers::Running) -> Option<peers::tempdir::Dir> {
    let dir = server.data_dir.take();
    server.stop().await;
    dir
}
