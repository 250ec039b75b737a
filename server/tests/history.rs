//! History with authorship over HTTP: listing versions, reading a past state, restoring it as a
//! new forward edit that connected editors receive live, and deleting a document.

mod common;

use common::*;
use tandem::auth::Role;
use tandem_crdt_model::protocol::{self, Inbound};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

fn text_of(update: &[u8]) -> String {
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(update).expect("decodes"))
        .expect("applies");
    let t = doc.get_or_insert_text("t");
    let s = t.get_string(&doc.transact());
    s
}

/// One client typing: each call appends `s` to its text and returns the update frame.
fn type_more(doc: &Doc, s: &str) -> Vec<u8> {
    let text = doc.get_or_insert_text("t");
    let before = doc.transact().state_vector();
    let len = text.len(&doc.transact());
    text.insert(&mut doc.transact_mut(), len, s);
    let update = doc.transact().encode_state_as_update_v1(&before);
    protocol::encode_update(&update)
}

async fn json(
    s: &Running,
    method: &str,
    path: &str,
    token: &str,
) -> (u16, serde_json::Value, Vec<u8>) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(s.addr(), method, path, &[("authorization", &bearer)], b"").await;
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, value, body)
}

// Versions list author and time; a past version reads back as it was; restoring it is a new
// edit that a connected editor receives, and that the history records under the restorer.
#[tokio::test]
async fn history_listing_and_restore_round_trip() {
    let s = start(with_auth).await;
    let ada = token("ada", &[("notes/**", Role::Write)], 60);
    let admin = token("root", &[("**", Role::Admin)], 60);
    let mut ws = connect_ok(s.addr(), &format!("notes/1?token={ada}")).await;
    let doc = Doc::with_client_id(1);
    for part in ["one ", "two ", "three"] {
        let frame = type_more(&doc, part);
        send(&mut ws, frame.clone()).await;
        loop {
            if recv_with(&mut ws, &[0, 2]).await == frame {
                break;
            }
        }
    }
    let (status, list, _) = json(&s, "GET", "/api/docs/notes/1/history?limit=2", &admin).await;
    assert_eq!(status, 200, "{list}");
    let versions = list["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["author"], "ada");
    assert!(versions[0]["time_ms"].as_u64().expect("time") > 1_600_000_000_000);
    let next = list["next_after"].as_u64().expect("more pages");
    let (_, rest, _) = json(
        &s,
        "GET",
        &format!("/api/docs/notes/1/history?after={next}"),
        &admin,
    )
    .await;
    assert_eq!(rest["versions"].as_array().expect("versions").len(), 1);
    assert!(rest["next_after"].is_null());

    let v1 = versions[0]["version"].as_u64().expect("seq");
    let (status, _, state) = json(&s, "GET", &format!("/api/docs/notes/1/at/{v1}"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&state), "one ");
    let (status, as_json, _) = json(
        &s,
        "GET",
        &format!("/api/docs/notes/1/at/{v1}?format=json"),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(as_json["content"], serde_json::json!({"t": "one "}));

    let (status, restored, _) = json(
        &s,
        "POST",
        &format!("/api/docs/notes/1/restore/{v1}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{restored}");
    // The editor receives the restore live and ends with the old content.
    let live = recv_with(&mut ws, &[0, 2]).await;
    let Some(Inbound::Update(u)) =
        protocol::decode_frame(&live, &protocol::Decoding::writer(1 << 20))
            .expect("valid")
            .pop()
    else {
        panic!("not an update");
    };
    doc.transact_mut().apply_update(u.decoded).expect("applies");
    assert_eq!(
        doc.get_or_insert_text("t").get_string(&doc.transact()),
        "one "
    );
    let (_, all, _) = json(&s, "GET", "/api/docs/notes/1/history?limit=100", &admin).await;
    let all = all["versions"].as_array().expect("versions");
    assert_eq!(
        all.len(),
        4,
        "nothing rewritten: three edits and the restore"
    );
    assert_eq!(all[3]["author"], "root");
}

// History, past states, restores and deletes need the admin role; unknown versions are 404.
#[tokio::test]
async fn admin_only_and_missing_versions() {
    let s = start(with_auth).await;
    let writer = token("w", &[("d", Role::Write)], 60);
    let admin = token("a", &[("d", Role::Admin)], 60);
    for (method, path) in [
        ("GET", "/api/docs/d/history"),
        ("GET", "/api/docs/d/at/1"),
        ("POST", "/api/docs/d/restore/1"),
        ("DELETE", "/api/docs/d"),
    ] {
        let (status, body, _) = json(&s, method, path, &writer).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "admin_required");
    }
    let (status, body, _) = json(&s, "GET", "/api/docs/d/at/999", &admin).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = json(&s, "GET", "/api/docs/d/at/notanumber", &admin).await;
    assert_eq!(status, 400);
    let (status, _, _) = json(&s, "POST", "/api/docs/d/history", &admin).await;
    assert_eq!(status, 405);
}

// Deleting a document closes its sockets with 4404 and removes it; a new socket finds it empty.
#[tokio::test]
async fn delete_document() {
    let s = start(|_| {}).await;
    let mut ws = connect_ok(s.addr(), "trash/1").await;
    still_syncs(&mut ws, 1).await;
    let (status, body, _) = json(&s, "DELETE", "/api/docs/trash/1", "unused").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(close_code(&mut ws).await, 4404);
    let (status, _, _) = json(&s, "DELETE", "/api/docs/trash/1", "unused").await;
    assert_eq!(status, 404);
    let mut ws = connect_ok(s.addr(), "trash/1").await;
    send(
        &mut ws,
        protocol::encode_sync_step1(&StateVector::default()),
    )
    .await;
    let step2 = recv_with(&mut ws, &[0, 1]).await;
    let Some(Inbound::Update(u)) =
        protocol::decode_frame(&step2, &protocol::Decoding::writer(1 << 20))
            .expect("valid")
            .pop()
    else {
        panic!("no step 2");
    };
    assert!(
        u.decoded.is_empty(),
        "the deleted document comes back empty"
    );
}

// A history page holds at most `history_page_len_max` versions: a limit at the bound gets that
// many and a pointer to the next page, a larger one is cut to the bound, never refused.
#[tokio::test]
async fn history_pages_stop_at_their_bound() {
    let s = start(|c| c.limits.history_page_len_max = 3).await;
    let mut ws = connect_ok(s.addr(), "notes/paged").await;
    let doc = Doc::with_client_id(1);
    for part in ["a", "b", "c", "d", "e"] {
        let frame = type_more(&doc, part);
        send(&mut ws, frame.clone()).await;
        while recv_with(&mut ws, &[0, 2]).await != frame {}
    }
    for (limit, expect) in [(2, 2), (3, 3), (4, 3), (1000, 3)] {
        let path = format!("/api/docs/notes/paged/history?limit={limit}");
        let (status, page, _) = json(&s, "GET", &path, "").await;
        assert_eq!(status, 200, "{page}");
        let versions = page["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), expect, "limit {limit}");
        assert!(
            page["next_after"].is_u64(),
            "more pages after limit {limit}"
        );
    }
}
