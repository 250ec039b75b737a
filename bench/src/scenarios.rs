//! The measured scenarios. Each takes a freshly started server, runs a bounded workload (bounded
//! in count and in time), and returns named figures.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::task::JoinSet;

use crate::client::{markers, Client, Clock, Writer};
use crate::peers::{cpu_seconds, memory, Running, Target};

pub type Figures = BTreeMap<String, f64>;

/// No single wait in a scenario lasts longer than this.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(120);

pub fn mib(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / (1024.0 * 1024.0);
    m
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    #[allow(clippy::cast_precision_loss)]
    let v = sorted[i.min(sorted.len() - 1)] as f64;
    v
}

pub async fn connect_many(server: &Running, docs: &[String]) -> anyhow::Result<Vec<Client>> {
    connect_spread(&[server.clone_target()], docs).await
}

/// One client per entry of `docs`, the i-th on `targets[i % targets.len()]` (several nodes).
pub async fn connect_spread(targets: &[Target], docs: &[String]) -> anyhow::Result<Vec<Client>> {
    let mut out = Vec::with_capacity(docs.len());
    // A few at a time: a connection storm measures accept queues, not the server.
    for (c, chunk) in docs.chunks(64).enumerate() {
        let mut set = JoinSet::new();
        for (i, doc) in chunk.iter().enumerate() {
            let url_doc = doc.clone();
            let target = targets[(c * 64 + i) % targets.len()].clone();
            set.spawn(async move { Client::connect(&target, &url_doc).await });
        }
        while let Some(r) = set.join_next().await {
            out.push(r??);
        }
    }
    Ok(out)
}

/// 1 writer, `readers` readers in one document, `edits` edits at `rate` per second: the time
/// from each send to its arrival at every reader.
pub async fn fanout_latency(
    server: &Running,
    readers: usize,
    edits: u32,
    rate: u32,
) -> anyhow::Result<Figures> {
    let target = [server.clone_target()];
    let all = fanout_latencies(&target[0], &target, readers, edits, rate).await?;
    let (_, peak) = memory(server.pid);
    Ok(Figures::from([
        ("p50_ms".into(), percentile(&all, 0.5) / 1000.0),
        ("p99_ms".into(), percentile(&all, 0.99) / 1000.0),
        ("peak_rss_mib".into(), mib(peak)),
    ]))
}

/// p50 and p99 of sorted latencies in µs, in ms.
pub fn p50_p99_ms(sorted_us: &[u64]) -> (f64, f64) {
    (
        percentile(sorted_us, 0.5) / 1000.0,
        percentile(sorted_us, 0.99) / 1000.0,
    )
}

/// [`fanout_latency`]'s workload with the writer on `writer` and the readers spread over
/// `readers`: every delivery's latency in µs, sorted.
pub async fn fanout_latencies(
    writer: &Target,
    targets: &[Target],
    readers: usize,
    edits: u32,
    rate: u32,
) -> anyhow::Result<Vec<u64>> {
    let doc = "bench/fanout".to_string();
    let clients = connect_spread(targets, &vec![doc.clone(); readers]).await?;
    let mut writer = Client::connect(writer, &doc).await?;
    let clock = Clock::new(edits as usize);
    let mut set = JoinSet::new();
    for mut reader in clients {
        let clock = Arc::clone(&clock);
        set.spawn(async move {
            let mut lat = Vec::with_capacity(edits as usize);
            let mut seen = 0u32;
            let mut found = Vec::new();
            while seen < edits {
                let frame = reader.next_binary().await?;
                found.clear();
                markers(&frame, &mut found);
                for seq in &found {
                    if let Some(us) = clock.latency_us(*seq) {
                        lat.push(us);
                    }
                    seen += 1;
                }
            }
            anyhow::Ok(lat)
        });
    }
    let mut w = Writer::new();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = tokio::time::Instant::now();
    for seq in 0..edits {
        let frame = w.edit(seq);
        clock.sent(seq);
        writer.send(frame).await?;
        next += period;
        tokio::time::sleep_until(next).await;
    }
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while let Some(r) = tokio::time::timeout_at(deadline, set.join_next())
        .await
        .context("readers did not receive every edit in time")?
    {
        all.extend(r??);
    }
    all.sort_unstable();
    Ok(all)
}

/// 1 writer sending `edits` edits as fast as the server takes them, `readers` readers: every
/// delivery counted until all readers have all edits.
pub async fn fanout_throughput(
    server: &Running,
    readers: usize,
    edits: u32,
) -> anyhow::Result<Figures> {
    let cpu_before = cpu_seconds(server.pid);
    let target = [server.clone_target()];
    let elapsed = fanout_flood(&target[0], &target, readers, edits).await?;
    let (_, peak) = memory(server.pid);
    #[allow(clippy::cast_precision_loss)]
    let deliveries = f64::from(edits) * readers as f64;
    Ok(Figures::from([
        ("deliveries_per_s".into(), deliveries / elapsed),
        ("server_cpu_s".into(), cpu_seconds(server.pid) - cpu_before),
        ("peak_rss_mib".into(), mib(peak)),
    ]))
}

/// [`fanout_throughput`]'s workload with the writer on `writer` and the readers spread over
/// `targets`: seconds until every reader has every edit.
pub async fn fanout_flood(
    writer: &Target,
    targets: &[Target],
    readers: usize,
    edits: u32,
) -> anyhow::Result<f64> {
    let doc = "bench/throughput".to_string();
    let clients = connect_spread(targets, &vec![doc.clone(); readers]).await?;
    let mut writer = Client::connect(writer, &doc).await?;
    let start = Instant::now();
    let mut set = JoinSet::new();
    for mut reader in clients {
        set.spawn(async move {
            let mut seen = 0u32;
            let mut found = Vec::new();
            while seen < edits {
                let frame = reader.next_binary().await?;
                found.clear();
                markers(&frame, &mut found);
                seen += u32::try_from(found.len()).unwrap_or(0);
            }
            anyhow::Ok(())
        });
    }
    let mut w = Writer::new();
    for seq in 0..edits {
        writer.send(w.edit(seq)).await?;
    }
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while let Some(r) = tokio::time::timeout_at(deadline, set.join_next())
        .await
        .context("readers did not receive every edit in time")?
    {
        r??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// `docs` documents × `per_doc` clients, each client editing every `every`: memory per
/// connection and per open document, and server CPU per 1,000 updates.
pub async fn many_documents(
    server: &Running,
    docs: usize,
    per_doc: usize,
    every: Duration,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let (base_rss, _) = memory(server.pid);
    let names: Vec<String> = (0..docs)
        .flat_map(|d| std::iter::repeat_n(format!("bench/many-{d}"), per_doc))
        .collect();
    let clients = connect_many(server, &names).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (loaded_rss, _) = memory(server.pid);
    let cpu_before = cpu_seconds(server.pid);
    let updates = edit_every(clients, every, duration).await?;
    let cpu = cpu_seconds(server.pid) - cpu_before;
    let grown = loaded_rss.saturating_sub(base_rss);
    #[allow(clippy::cast_precision_loss)]
    let per = |n: usize| grown as f64 / n as f64 / 1024.0;
    let (_, peak) = memory(server.pid);
    Ok(Figures::from([
        ("rss_per_connection_kib".into(), per(docs * per_doc)),
        ("rss_per_document_kib".into(), per(docs)),
        (
            "cpu_ms_per_1000_updates".into(),
            cpu * 1000.0 / updates * 1000.0,
        ),
        ("updates".into(), updates),
        ("peak_rss_mib".into(), mib(peak)),
    ]))
}

/// Every client edits every `every` for `duration`, reading what arrives meanwhile: the count of
/// updates sent.
pub async fn edit_every(
    clients: Vec<Client>,
    every: Duration,
    duration: Duration,
) -> anyhow::Result<f64> {
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut set = JoinSet::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let sent = Arc::clone(&sent);
        set.spawn(async move {
            let mut w = Writer::new();
            // Spread the clients over the period so edits arrive evenly.
            #[allow(clippy::cast_possible_truncation)]
            let offset = every.mul_f64((i % 97) as f64 / 97.0);
            tokio::time::sleep(offset).await;
            let end = tokio::time::Instant::now() + duration;
            let mut seq = 0;
            while tokio::time::Instant::now() < end {
                client.send(w.edit(seq)).await?;
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                seq += 1;
                // Drain what arrived meanwhile so the server never sees a stalled reader.
                let pause = tokio::time::sleep(every);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        frame = client.socket.next() => if frame.is_none() { anyhow::bail!("closed") },
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    #[allow(clippy::cast_precision_loss)]
    let updates = sent.load(std::sync::atomic::Ordering::Relaxed) as f64;
    Ok(updates)
}

/// `n` idle sockets over 100 documents: memory per socket, and sockets per GiB.
pub async fn idle(server: &Running, n: usize) -> anyhow::Result<Figures> {
    let (base, _) = memory(server.pid);
    let names: Vec<String> = (0..n).map(|i| format!("bench/idle-{}", i % 100)).collect();
    let clients = connect_many(server, &names).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, peak) = memory(server.pid);
    drop(clients);
    #[allow(clippy::cast_precision_loss)]
    let per = rss.saturating_sub(base) as f64 / n as f64;
    Ok(Figures::from([
        ("rss_per_socket_kib".into(), per / 1024.0),
        (
            "sockets_per_gib".into(),
            (1024.0 * 1024.0 * 1024.0) / per.max(1.0),
        ),
        ("peak_rss_mib".into(), mib(peak)),
    ]))
}

/// The time from socket open to the SyncStep2 of `doc`.
pub async fn cold_open(server: &Running, doc: &str) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let (socket, _) = tokio_tungstenite::connect_async(server.url(doc)).await?;
    let mut client = Client::from_socket(socket, server, doc);
    client
        .send(tandem_crdt_model::protocol::encode_sync_step1(
            &yrs::StateVector::default(),
        ))
        .await?;
    let bytes = tokio::time::timeout(STEP_TIMEOUT, client.until_sync_step2())
        .await
        .context("no SyncStep2 in time")??;
    Ok((start.elapsed().as_secs_f64() * 1000.0, bytes))
}

/// Durable writes: `writers` clients on their own documents sending as fast as acknowledgements
/// (the server's echo) come back, for `duration`.
pub async fn durable_writes(
    server: &Running,
    writers: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let names: Vec<String> = (0..writers).map(|i| format!("bench/durable-{i}")).collect();
    let clients = connect_many(server, &names).await?;
    let flushes_before = metric(server, "tandem_flushes_total").await.unwrap_or(0.0);
    let start = Instant::now();
    let mut set = JoinSet::new();
    for mut client in clients {
        set.spawn(async move {
            let mut w = Writer::new();
            let end = Instant::now() + duration;
            let mut acked = 0u64;
            let mut seq = 0;
            // A window of 8 unacknowledged edits per writer, as an editor typing fast has.
            let mut in_flight = 0;
            let mut found = Vec::new();
            while Instant::now() < end || in_flight > 0 {
                while in_flight < 8 && Instant::now() < end {
                    client.send(w.edit(seq)).await?;
                    seq += 1;
                    in_flight += 1;
                }
                let frame = tokio::time::timeout(STEP_TIMEOUT, client.next_binary()).await??;
                found.clear();
                markers(&frame, &mut found);
                in_flight -= found.len().min(in_flight);
                acked += u64::try_from(found.len()).unwrap_or(0);
            }
            anyhow::Ok(acked)
        });
    }
    let mut acked = 0;
    while let Some(r) = set.join_next().await {
        acked += r??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let flushes = metric(server, "tandem_flushes_total").await.unwrap_or(0.0) - flushes_before;
    #[allow(clippy::cast_precision_loss)]
    let acked = acked as f64;
    Ok(Figures::from([
        ("durable_updates_per_s".into(), acked / elapsed),
        ("fsyncs_per_s".into(), flushes / elapsed),
        ("updates_per_fsync".into(), acked / flushes.max(1.0)),
    ]))
}

/// One counter from tandem's `/metrics`.
pub async fn metric(server: &Running, name: &str) -> Option<f64> {
    let body = http_get(&server.addr, "/metrics").await.ok()?;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A minimal HTTP/1.0 GET (no client crate for two metrics reads).
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// The editing trace as one Yjs update per edit, or a synthetic one of the same size; only its
/// first `limit` edits when given (quick mode: replaying all 259,778 edits through `yrs` only to
/// keep a few thousand took minutes in the debug build that CI runs).
pub fn trace_updates(dir: &Path, limit: Option<usize>) -> (Vec<Vec<u8>>, String) {
    let path = dir.join("automerge-paper.json.gz");
    let limit = limit.unwrap_or(usize::MAX);
    match read_trace(&path, limit) {
        Ok(updates) => (updates, format!("{} (259,778 edits)", path.display())),
        Err(e) => (
            synthetic_trace(limit.min(259_778)),
            format!(
                "synthetic, 259,778 single-character edits ({} unavailable: {e})",
                path.display()
            ),
        ),
    }
}

fn read_trace(path: &Path, limit: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    use yrs::{Text, Transact};
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .context("running gzip")?;
    anyhow::ensure!(out.status.success(), "gzip could not read it");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let txns = json["txns"].as_array().context("no txns")?;
    let doc = yrs::Doc::with_options(yrs::Options {
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    });
    let text = doc.get_or_insert_text("t");
    let mut updates = Vec::new();
    for txn in txns {
        for patch in txn["patches"].as_array().into_iter().flatten() {
            if updates.len() == limit {
                return Ok(updates);
            }
            let pos = u32::try_from(patch[0].as_u64().unwrap_or(0)).unwrap_or(0);
            let del = u32::try_from(patch[1].as_u64().unwrap_or(0)).unwrap_or(0);
            let ins = patch[2].as_str().unwrap_or_default();
            let mut t = doc.transact_mut();
            if del > 0 {
                text.remove_range(&mut t, pos, del);
            }
            if !ins.is_empty() {
                text.insert(&mut t, pos, ins);
            }
            updates.push(t.encode_update_v1());
        }
    }
    Ok(updates)
}

fn synthetic_trace(n: usize) -> Vec<Vec<u8>> {
    use yrs::{Text, Transact};
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text("t");
    let mut len = 0u32;
    let mut out = Vec::with_capacity(n);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..n {
        // xorshift: deterministic positions, 70% inserts near the previous one.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut t = doc.transact_mut();
        if len > 0 && x % 10 < 3 {
            let at = u32::try_from(x % u64::from(len)).unwrap_or(0);
            text.remove_range(&mut t, at, 1);
            len -= 1;
        } else {
            let at = if len == 0 {
                0
            } else {
                len - u32::try_from(x % u64::from(len.min(40))).unwrap_or(0)
            };
            text.insert(&mut t, at, "x");
            len += 1;
        }
        out.push(t.encode_update_v1());
    }
    out
}
