//! Webhooks end to end: the real `tandem` binary posting to a real HTTP receiver on a loopback
//! port (`common/receiver.rs`), which logs every request and answers by a plan the test sets.
//! Changes are made through the REST API (each `POST /api/notes` is one `note.created`) and
//! websocket editors; delivery is checked on what the receiver got.

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use common::{connect_ok, edit, metric, recv_with, send, token, SECRET};
use receiver::{admin, create_note, created, flags, Answer, Receiver, Tandem, HOOK_SECRET, WITHIN};
use tandem::auth::Role;
use tandem::webhooks::signing;

// Every request carries the four headers and a signature that verifies with the secret and no
// other; the body is the feed's event plus `delivery` and `attempt`; a filtered endpoint gets
// only what its filters take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_signed_and_a_wrong_secret_fails() {
    let all = Receiver::start(|_| Answer::Status(200)).await;
    let issues_only = Receiver::start(|_| Answer::Status(204)).await;
    let dir = tempfile::tempdir().expect("dir");
    let hooks = [
        all.url("/all"),
        format!("{};events=issue.*", issues_only.url("/i")),
    ];
    let t = Tandem::start(dir.path(), &flags(&hooks, &[]));
    for i in 0..5 {
        create_note(t.addr, &format!("s{i}"), None).await;
    }
    let got = all.wait_deduped(5, WITHIN).await;
    assert_eq!(created(&got), ["s0", "s1", "s2", "s3", "s4"]);
    for r in &got {
        let timestamp: u64 = r.header("x-tandem-timestamp").parse().expect("a timestamp");
        assert!(timestamp.abs_diff(tandem::clock::now_s()) < 60);
        let signature = r.header("x-tandem-signature");
        assert!(signing::verify(
            HOOK_SECRET.as_bytes(),
            timestamp,
            &r.body,
            signature
        ));
        assert!(!signing::verify(
            b"another secret",
            timestamp,
            &r.body,
            signature
        ));
        assert!(!signing::verify(
            HOOK_SECRET.as_bytes(),
            timestamp + 1,
            &r.body,
            signature
        ));
        let json = r.json();
        assert_eq!(r.header("x-tandem-event"), json["type"]);
        assert_eq!(r.header("x-tandem-delivery"), json["delivery"]);
        assert_eq!(json["attempt"], 1);
        assert_eq!(
            json["doc"],
            format!("notes/{}", json["item"].as_str().expect("item"))
        );
        assert_eq!(json["kind"], "note");
        assert_eq!(json["by"], serde_json::json!(["anonymous"]));
        assert_eq!(r.header("content-type"), "application/json");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(issues_only.log().is_empty(), "notes are not issue.*");
    assert_eq!(all.log().len(), 5, "each sent once");
}

// A receiver that answers 500 three times and then 200 gets every event, in order, each
// answered 2xx exactly once; the first event took four attempts (`attempt` counts them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_each_event_once_in_order() {
    let r = Receiver::start(|n| Answer::Status(if n < 3 { 500 } else { 200 })).await;
    let dir = tempfile::tempdir().expect("dir");
    let t = Tandem::start(dir.path(), &flags(&[r.url("/")], &[]));
    let ids: Vec<String> = (0..6).map(|i| format!("o{i}")).collect();
    for id in &ids {
        create_note(t.addr, id, None).await;
    }
    let got = r.wait_deduped(ids.len(), WITHIN).await;
    assert_eq!(created(&got), ids, "in order");
    assert_eq!(r.delivered().len(), ids.len(), "each delivered once");
    let log = r.log();
    assert_eq!(log.len(), ids.len() + 3);
    let first = log[0].header("x-tandem-delivery").to_string();
    assert!(
        log[..4]
            .iter()
            .all(|x| x.header("x-tandem-delivery") == first),
        "the first event is retried before the next is sent"
    );
    assert_eq!(log[3].json()["attempt"], 4);
    assert_eq!(metric(t.addr, &retried_metric(&t).await).await, 3);
}

/// The `endpoint`-labelled name of the retries counter of the only endpoint.
async fn retried_metric(t: &Tandem) -> String {
    let (_, list) = admin(t.addr, "GET", "/api/admin/webhooks", "").await;
    let id = list["endpoints"][0]["id"]
        .as_str()
        .expect("an endpoint")
        .to_string();
    format!("tandem_webhook_retried_total{{endpoint=\"{id}\"}}")
}

/// One websocket round trip: an edit until its echo (its acknowledgement).
async fn round_trip(ws: &mut common::Ws, client: u64) -> Duration {
    let frame = edit(client, "x");
    let started = Instant::now();
    send(ws, frame.clone()).await;
    while recv_with(ws, &[0, 2]).await != frame {}
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

// A receiver that never answers holds only its own endpoint: an editor's round trips stay as
// fast as without it while its events wait, and another endpoint gets the same events at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_delays_neither_editors_nor_other_endpoints() {
    let hung = Receiver::start(|_| Answer::Hang).await;
    let healthy = Receiver::start(|_| Answer::Status(200)).await;
    let dir = tempfile::tempdir().expect("dir");
    let hooks = [hung.url("/hang"), healthy.url("/ok")];
    let t = Tandem::start(dir.path(), &flags(&hooks, &["--webhook-timeout-s", "1"]));
    // Round trips for 3 s on a fresh document each time (a document grows with every trip):
    // before any event exists, then while the hung endpoint's events wait.
    let t_addr = t.addr;
    let trips = |doc: &'static str, from: u64| async move {
        let mut ws = connect_ok(t_addr, doc).await;
        let started = Instant::now();
        let mut took = Vec::new();
        let mut client = from;
        while started.elapsed() < Duration::from_secs(3) {
            took.push(round_trip(&mut ws, client).await);
            client += 1;
        }
        took.sort();
        took
    };
    let before = trips("rtt/before", 1_000_000).await;
    let started = Instant::now();
    for i in 0..20 {
        create_note(t.addr, &format!("h{i}"), None).await;
    }
    let during = trips("rtt/during", 2_000_000).await;
    let got = healthy.wait_deduped(20, Duration::from_secs(5)).await;
    let other_endpoint = got.last().expect("events").at - started;
    // The timeout at its edge: the first attempt is given up after 1 s, and the same event is
    // tried again after the backoff.
    let tried = hung.log();
    assert!(tried.len() >= 2, "{} attempts", tried.len());
    let gap = tried[1].at - tried[0].at;
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_secs(2),
        "{gap:?}"
    );
    assert_eq!(
        tried[1].header("x-tandem-delivery"),
        tried[0].header("x-tandem-delivery")
    );
    assert_eq!(tried[1].json()["attempt"], 2);
    assert!(hung.delivered().is_empty());
    let (b50, d50) = (percentile(&before, 50), percentile(&during, 50));
    let (b99, d99) = (percentile(&before, 99), percentile(&during, 99));
    eprintln!(
        "round trip without pending events: p50 {b50:?} p99 {b99:?}; with a hung receiver's \
         events pending: p50 {d50:?} p99 {d99:?} ({} and {} trips); the healthy endpoint had \
         all 20 events {other_endpoint:?} after the first was made",
        before.len(),
        during.len()
    );
    assert!(d99 < Duration::from_millis(250), "p99 {d99:?}");
    assert!(
        other_endpoint < Duration::from_secs(3),
        "{other_endpoint:?}"
    );
}

// `kill -9` while events wait for a receiver that is down: after the restart every event of
// an acknowledged change arrives (deduped by X-Tandem-Delivery), none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_events_pending_loses_none() {
    let r = Receiver::start(|_| Answer::Status(503)).await;
    let dir = tempfile::tempdir().expect("dir");
    let args = flags(&[r.url("/")], &[]);
    let t = Tandem::start(dir.path(), &args);
    let ids: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for id in &ids {
        create_note(t.addr, id, None).await;
    }
    t.kill9();
    assert!(r.delivered().is_empty());
    r.set_plan(|_| Answer::Status(200));
    let t = Tandem::start(dir.path(), &args);
    let got = r.wait_deduped(ids.len(), WITHIN).await;
    assert_eq!(created(&got), ids, "every one, in order");
    drop(t);
}

// The outbox keeps `--webhook-outbox-len-max` events: at the bound nothing is parked, one past
// it parks the oldest (the admin listing and the metric say so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_bound_at_its_edge() {
    let r = Receiver::start(|_| Answer::Status(503)).await;
    let dir = tempfile::tempdir().expect("dir");
    let t = Tandem::start(
        dir.path(),
        &flags(&[r.url("/")], &["--webhook-outbox-len-max", "5"]),
    );
    for i in 0..5 {
        create_note(t.addr, &format!("b{i}"), None).await;
    }
    let (_, list) = admin(t.addr, "GET", "/api/admin/webhooks", "").await;
    let e = &list["endpoints"][0];
    assert_eq!(
        (e["pending"].as_u64(), e["dead"].as_u64()),
        (Some(5), Some(0)),
        "{list}"
    );
    create_note(t.addr, "b5", None).await;
    let (_, list) = admin(t.addr, "GET", "/api/admin/webhooks", "").await;
    let e = &list["endpoints"][0];
    assert_eq!(
        (e["pending"].as_u64(), e["dead"].as_u64()),
        (Some(5), Some(1)),
        "{list}"
    );
    let dead = &e["dead_events"][0];
    assert!(
        dead["error"]
            .as_str()
            .expect("error")
            .contains("outbox full"),
        "{dead}"
    );
    let id = e["id"].as_str().expect("id");
    let parked = format!("tandem_webhook_parked_total{{endpoint=\"{id}\"}}");
    assert_eq!(metric(t.addr, &parked).await, 1);
}

// Events older than `--webhook-age-max-s` are parked as dead, listed by the admin API with the
// last error, and re-queued by `POST .../retry` with their delivery ids; the API needs an admin
// of every document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_events_are_listed_and_retried() {
    let r = Receiver::start(|_| Answer::Status(500)).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = String::from_utf8(SECRET.to_vec()).expect("utf-8");
    let extra = ["--webhook-age-max-s", "1", "--jwt-secret", &secret];
    let t = Tandem::start(dir.path(), &flags(&[r.url("/")], &extra));
    let writer = token("ada", &[("notes/*", Role::Write)], 600);
    let root = token("root", &[("**", Role::Admin)], 600);
    let notes_admin = token("nia", &[("notes/**", Role::Admin)], 600);
    for i in 0..3 {
        create_note(t.addr, &format!("d{i}"), Some(&writer)).await;
    }
    let deadline = Instant::now() + WITHIN;
    let list = loop {
        let (status, list) = admin(t.addr, "GET", "/api/admin/webhooks", &root).await;
        assert_eq!(status, 200);
        if list["endpoints"][0]["dead"] == 3 {
            break list;
        }
        assert!(Instant::now() < deadline, "not dead yet: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let e = &list["endpoints"][0];
    assert_eq!(e["pending"], 0);
    assert_eq!(e["last_error"], "HTTP 500");
    let dead: Vec<String> = e["dead_events"]
        .as_array()
        .expect("dead events")
        .iter()
        .map(|d| d["delivery"].as_str().expect("delivery").to_string())
        .collect();
    assert_eq!(dead.len(), 3);
    assert!(e["dead_events"][0]["error"]
        .as_str()
        .expect("error")
        .contains("HTTP 500"));
    let id = e["id"].as_str().expect("id").to_string();

    let retry = format!("/api/admin/webhooks/{id}/retry");
    assert_eq!(
        admin(t.addr, "GET", "/api/admin/webhooks", &writer).await.0,
        403
    );
    assert_eq!(admin(t.addr, "POST", &retry, &notes_admin).await.0, 403);
    assert_eq!(
        admin(t.addr, "POST", "/api/admin/webhooks/nope/retry", &root)
            .await
            .0,
        404
    );
    assert_eq!(admin(t.addr, "GET", &retry, &root).await.0, 405);
    r.set_plan(|_| Answer::Status(200));
    let (status, answer) = admin(t.addr, "POST", &retry, &root).await;
    assert_eq!((status, answer["requeued"].as_u64()), (200, Some(3)));
    // Re-queued events are old: the age limit counts from the change, so they get one attempt
    // each before they would die again; a receiver that is back takes them.
    let got = r.wait_deduped(3, WITHIN).await;
    let delivered: Vec<&str> = got.iter().map(|g| g.header("x-tandem-delivery")).collect();
    assert_eq!(delivered, dead, "the same deliveries, in order");
    assert_eq!(created(&got), ["d0", "d1", "d2"]);
    let (_, list) = admin(t.addr, "GET", "/api/admin/webhooks", &root).await;
    assert_eq!(list["endpoints"][0]["dead"], 0, "{list}");
    assert_eq!(list["endpoints"][0]["delivered"], 3, "{list}");
}

// An `https` endpoint is spoken to in TLS (rustls): against a plain HTTP receiver the handshake
// fails, so the receiver never sees a request, and the failure is the endpoint's last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_spoken_to_in_tls() {
    let r = Receiver::start(|_| Answer::Status(200)).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("https://{}/tls", r.addr);
    let t = Tandem::start(dir.path(), &flags(&[url], &[]));
    create_note(t.addr, "tls", None).await;
    let deadline = Instant::now() + WITHIN;
    let error = loop {
        let (_, list) = admin(t.addr, "GET", "/api/admin/webhooks", "").await;
        if let Some(error) = list["endpoints"][0]["last_error"].as_str() {
            break error.to_string();
        }
        assert!(Instant::now() < deadline, "no attempt: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("the https endpoint's last error: {error}");
    assert!(
        error.starts_with("request failed") && error.contains("Connect"),
        "{error}"
    );
    assert!(
        r.log().is_empty(),
        "no plain HTTP request reached the receiver"
    );
}

/// The Yjs update inside a y-websocket update frame (`[0, 2, varUint8Array]`).
fn update_of(frame: &[u8]) -> Vec<u8> {
    use yrs::encoding::read::{Cursor, Read};
    let mut cursor = Cursor::new(&frame[2..]);
    cursor.read_buf().expect("an update").to_vec()
}

// With --webhook-document-updates every change also arrives as `document.updated` with the
// Yjs update and the state vector after it: applying the updates in order rebuilds the document
// exactly (an untyped one too), and the last state vector is the replica's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_updates_rebuild_an_exact_replica() {
    use base64::Engine;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{GetString, ReadTxn, Transact, Update};
    let r = Receiver::start(|_| Answer::Status(200)).await;
    let dir = tempfile::tempdir().expect("dir");
    let hook = format!("{};events=document.updated", r.url("/"));
    let t = Tandem::start(dir.path(), &flags(&[hook], &["--webhook-document-updates"]));
    let mut ws = connect_ok(t.addr, "plain/replica").await;
    let original = yrs::Doc::new();
    for (client, text) in [(11, "one "), (12, "two "), (13, "three")] {
        let frame = edit(client, text);
        send(&mut ws, frame.clone()).await;
        while recv_with(&mut ws, &[0, 2]).await != frame {}
        let update = Update::decode_v1(&update_of(&frame)).expect("decodes");
        original
            .transact_mut()
            .apply_update(update)
            .expect("applies");
    }
    let got = r.wait_deduped(3, WITHIN).await;
    let replica = yrs::Doc::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    for g in &got {
        let json = g.json();
        assert_eq!(json["type"], "document.updated");
        assert_eq!(json["doc"], "plain/replica");
        let bytes = b64
            .decode(json["update"].as_str().expect("update"))
            .expect("base64");
        let update = Update::decode_v1(&bytes).expect("decodes");
        replica
            .transact_mut()
            .apply_update(update)
            .expect("applies");
    }
    let text = |d: &yrs::Doc| d.get_or_insert_text("t").get_string(&d.transact());
    assert_eq!(text(&replica), text(&original));
    let last = got.last().expect("events").json();
    let sv = b64
        .decode(last["state_vector"].as_str().expect("sv"))
        .expect("base64");
    assert_eq!(sv, replica.transact().state_vector().encode_v1());
}

// Not a check but a measurement (`TANDEM_BIN=target/release/tandem cargo test --test webhooks
// -- --ignored --nocapture`): the latency from the REST request that makes a change to the
// receiver's 2xx while events come one at a time, and how fast one endpoint drains a backlog (one request at a time, in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_delivery_latency_and_throughput() {
    let r = Receiver::start(|_| Answer::Status(200)).await;
    let dir = tempfile::tempdir().expect("dir");
    let t = Tandem::start(dir.path(), &flags(&[r.url("/")], &[]));
    let (trickle, backlog) = (300, 3000);
    let mut sent = std::collections::HashMap::new();
    let mut answered = Vec::new();
    for i in 0..trickle {
        let id = format!("l{i}");
        let started = Instant::now();
        sent.insert(id.clone(), started);
        create_note(t.addr, &id, None).await;
        answered.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = r.wait_deduped(trickle, WITHIN).await;
    // From the request that made the change (its commit included) to the receiver's 2xx.
    let mut latency: Vec<Duration> = got
        .iter()
        .map(|g| g.at - sent[g.json()["item"].as_str().expect("item")])
        .collect();
    latency.sort();
    answered.sort();
    r.set_plan(|_| Answer::Status(503));
    for i in 0..backlog {
        create_note(t.addr, &format!("b{i}"), None).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = r.deduped().len();
    r.set_plan(|_| Answer::Status(200));
    let all = r
        .wait_deduped(trickle + backlog, Duration::from_secs(120))
        .await;
    let drained = &all[before..];
    let took = drained.last().expect("events").at - drained[0].at;
    #[allow(clippy::cast_precision_loss)]
    let rate = drained.len() as f64 / took.as_secs_f64();
    eprintln!(
        "the REST create answered in p50 {:?} p99 {:?}; its event at the receiver, from the \
         same request's start, over {trickle} events one at a time: p50 {:?} p90 {:?} p99 {:?} \
         max {:?}; a backlog of {} drained in {took:?}: {rate:.0} events/s",
        percentile(&answered, 50),
        percentile(&answered, 99),
        percentile(&latency, 50),
        percentile(&latency, 90),
        percentile(&latency, 99),
        latency.last().expect("events"),
        drained.len()
    );
}
