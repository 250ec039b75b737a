//! Authentication against the in-process server over real sockets and HTTP: how a token is
//! found, which tokens are refused and with which code, what a `sub` owns, who sees which
//! document names in `/api/stats`, and that failures at one address never refuse a valid token.

mod common;

use std::time::Duration;

use common::*;
use tandem::auth::Role;
use tandem_crdt_model::protocol;
use yrs::StateVector;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// The `Bearer` scheme name is case-insensitive (RFC 7235 §2.1), on REST and on the upgrade; any
// other scheme is no token at all.
#[tokio::test]
async fn bearer_scheme_in_any_case() {
    let s = start(with_auth).await;
    let t = token("ada", &[("**", Role::Write)], 60);
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let value = format!("{scheme} {t}");
        let (status, _, body) = http(
            s.addr(),
            "GET",
            "/api/notes",
            &[("authorization", &value)],
            b"",
        )
        .await;
        assert_eq!(status, 200, "{scheme}: {}", String::from_utf8_lossy(&body));
        let mut ws = connect_with(s.addr(), "notes/1", &[("authorization", &value)])
            .await
            .unwrap_or_else(|e| panic!("{scheme} upgrade refused: {e}"));
        still_syncs(&mut ws, 1).await;
    }
    let basic = format!("Basic {t}");
    let (status, _, body) = http(
        s.addr(),
        "GET",
        "/api/notes",
        &[("authorization", &basic)],
        b"",
    )
    .await;
    assert_eq!((status, error_code(&body).as_str()), (401, "token_missing"));
}

// Thirty garbage tokens from one address (all the default limit allows) and one more: the
// failing attempts get 401 and then 429, but a valid token from the same address is accepted
// on REST and on the websocket, as it would be for a colleague behind the same NAT.
#[tokio::test]
async fn failures_at_an_address_never_refuse_a_valid_token() {
    let s = start(with_auth).await;
    let limit = tandem::config::Limits::default().auth_failures_per_ip_per_min;
    let garbage = [("authorization", "Bearer garbage")];
    for i in 0..limit {
        let (status, _, _) = http(s.addr(), "GET", "/api/notes", &garbage, b"").await;
        assert_eq!(status, 401, "failure {i} is within the limit");
    }
    let (status, _, body) = http(s.addr(), "GET", "/api/notes", &garbage, b"").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "too_many_auth_failures")
    );
    assert_eq!(refused_status(s.addr(), "d?token=garbage").await, 429);
    let good = token("ada", &[("**", Role::Write)], 60);
    let (status, _, _) = http(
        s.addr(),
        "GET",
        "/api/notes",
        &[("authorization", &bearer(&good))],
        b"",
    )
    .await;
    assert_eq!(status, 200, "a valid token on REST");
    let mut ws = connect_ok(s.addr(), &format!("d?token={good}")).await;
    still_syncs(&mut ws, 2).await;
    let (status, _, _) = http(s.addr(), "GET", "/api/notes", &garbage, b"").await;
    assert_eq!(status, 429, "failing attempts are still slowed");
}

// A token without `exp` would be valid forever: refused with its own code unless the operator
// opted in for service tokens.
#[tokio::test]
async fn a_token_without_exp_is_refused_unless_allowed() {
    let forever = token_with_exp("svc", &[("**", Role::Write)], None);
    let s = start(with_auth).await;
    let (status, _, body) = http(
        s.addr(),
        "GET",
        "/api/notes",
        &[("authorization", &bearer(&forever))],
        b"",
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "token_no_expiry")
    );
    assert_eq!(
        refused_status(s.addr(), &format!("d?token={forever}")).await,
        401
    );

    let s = start(|c| {
        with_auth(c);
        let verifier = c.auth.take().expect("auth on");
        c.auth = Some(verifier.allowing_no_exp(true));
    })
    .await;
    let (status, _, _) = http(
        s.addr(),
        "GET",
        "/api/notes",
        &[("authorization", &bearer(&forever))],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let mut ws = connect_ok(s.addr(), &format!("d?token={forever}")).await;
    still_syncs(&mut ws, 3).await;
}

// A `exp` beyond what the clock can represent (2^63 s and more) once panicked the connection task
// and left `tandem_connections` one too high for good. Such a token connects and syncs, and
// after its socket closes the gauge is back where it was.
#[tokio::test]
async fn an_exp_beyond_the_clock_connects_and_releases_its_slot() {
    let s = start(with_auth).await;
    let before = metric(s.addr(), "tandem_connections").await;
    for exp in [(1u64 << 63) + 1, u64::MAX] {
        let t = token_with_exp("far", &[("d", Role::Write)], Some(exp));
        let mut ws = connect_ok(s.addr(), &format!("d?token={t}")).await;
        still_syncs(&mut ws, 4).await;
        assert_eq!(metric(s.addr(), "tandem_connections").await, before + 1);
        ws.close(None).await.expect("closes");
        let deadline = tokio::time::Instant::now() + WAIT;
        while metric(s.addr(), "tandem_connections").await != before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "exp {exp}: the gauge never came back to {before}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// Every `sub` owns a private space its owner can reach everywhere: a note created over REST is
// the same document the websocket and `/api/docs` open, under the documented segment. A sub too
// long to be one is refused with its own 401 rather than creating documents nobody can sync.
#[tokio::test]
async fn every_sub_owns_a_reachable_private_space() {
    let s = start(with_auth).await;
    let cases = [
        ("ålice", "~C3~A5lice"),
        ("a\nb", "a~0Ab"),
        ("a\tb", "a~09b"),
        ("a b", "a~20b"),
        ("%2e%2e", "~252e~252e"),
        ("auth0|42", "auth0~7C42"),
        ("..", "~2E~2E"),
        ("ada.lovelace", "ada.lovelace"),
    ];
    for (i, (sub, segment)) in cases.into_iter().enumerate() {
        let t = token(sub, &[], 60);
        let auth = [("authorization", bearer(&t))];
        let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, body) = http(
            s.addr(),
            "POST",
            "/api/private/notes",
            &auth,
            br#"{"id":"n1","title":"Mine"}"#,
        )
        .await;
        assert_eq!(status, 201, "{sub:?}: {}", String::from_utf8_lossy(&body));
        let created: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let doc = format!("private/{segment}/notes/n1");
        assert_eq!(created["doc"], doc.as_str(), "{sub:?}");

        let mut ws = connect_ok(s.addr(), &format!("{doc}?token={t}")).await;
        send(
            &mut ws,
            protocol::encode_sync_step1(&StateVector::default()),
        )
        .await;
        let step2 = recv_with(&mut ws, &[0, 1]).await;
        assert!(
            step2.windows(4).any(|w| w == b"Mine"),
            "{sub:?}: the REST note over the socket"
        );
        still_syncs(&mut ws, 10 + u64::try_from(i).expect("small")).await;

        let step1 = protocol::encode_sync_step1(&StateVector::default());
        let path = format!("/api/docs/{doc}/sync");
        let (status, _, _) = http(s.addr(), "POST", &path, &auth, &step1).await;
        assert_eq!(status, 200, "{sub:?}: /api/docs");
        let other = token("mallory", &[("**", Role::Admin)], 60);
        assert_eq!(
            refused_status(s.addr(), &format!("{doc}?token={other}")).await,
            403
        );
    }
    let long = token(&"a".repeat(300), &[("**", Role::Write)], 60);
    let (status, _, body) = http(
        s.addr(),
        "GET",
        "/api/private/notes",
        &[("authorization", &bearer(&long))],
        b"",
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "token_sub_too_long")
    );
    assert_eq!(
        refused_status(s.addr(), &format!("notes/1?token={long}")).await,
        401
    );
    let longest = token(&"a".repeat(tandem::space::SEGMENT_LEN_MAX_BYTES), &[], 60);
    let (status, _, _) = http(
        s.addr(),
        "GET",
        "/api/private/notes",
        &[("authorization", &bearer(&longest))],
        b"",
    )
    .await;
    assert_eq!(status, 200, "the longest segment is accepted");
}

// `/api/stats` names open documents only to who may administer them: without a token counts
// only, with one the rooms it holds admin on, never someone else's private space; a bad token
// is a 401 like anywhere else.
#[tokio::test]
async fn stats_names_only_what_the_caller_administers() {
    let s = start(with_auth).await;
    let alice = token("alice", &[("notes/*", Role::Write)], 60);
    let _private = connect_ok(s.addr(), &format!("private/alice/notes/1?token={alice}")).await;
    let _shared = connect_ok(s.addr(), &format!("notes/1?token={alice}")).await;
    let addr = s.addr();
    let stats = move |token: Option<String>| async move {
        let headers: Vec<(&str, String)> =
            token.iter().map(|t| ("authorization", bearer(t))).collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, body) = http(addr, "GET", "/api/stats", &headers, b"").await;
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        (status, json)
    };
    let (status, anonymous) = stats(None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            anonymous["rooms"].as_u64(),
            anonymous["connections"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert!(anonymous.get("per_room").is_none(), "{anonymous}");
    let everything = token("root", &[("**", Role::Admin)], 60);
    let (_, admin) = stats(Some(everything)).await;
    assert_eq!(
        admin["per_room"],
        serde_json::json!({ "notes/1": 1 }),
        "{admin}"
    );
    let (_, writer) = stats(Some(alice)).await;
    assert_eq!(writer["per_room"], serde_json::json!({}), "{writer}");
    let owner = token("alice", &[("private/alice/**", Role::Admin)], 60);
    let (_, owner) = stats(Some(owner)).await;
    assert_eq!(
        owner["per_room"],
        serde_json::json!({ "private/alice/notes/1": 1 }),
        "{owner}"
    );
    let (status, bad) = stats(Some("garbage".into())).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (401, Some("token_malformed"))
    );
}

// Dev login at its two bounds: a body of exactly `dev_token_body_max_bytes` is read and one byte
// more is refused with 413 before parsing; the token it mints expires `dev_token_ttl` after it
// was signed, to the second.
#[tokio::test]
async fn dev_tokens_at_their_limits() {
    let ttl = Duration::from_secs(90);
    let s = start(|c| {
        with_auth(c);
        c.dev_login_secret = Some(SECRET.to_vec());
        c.limits.dev_token_body_max_bytes = 100;
        c.timing.dev_token_ttl = ttl;
    })
    .await;
    let padded = |len: usize| {
        let json = br#"{"sub":"ada"}"#.to_vec();
        let mut body = json.clone();
        body.resize(len, b' '); // JSON allows trailing whitespace
        body
    };
    let before = tandem::auth::now_s();
    let (status, _, body) = http(s.addr(), "POST", "/api/dev/token", &[], &padded(100)).await;
    let after = tandem::auth::now_s();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = http(s.addr(), "POST", "/api/dev/token", &[], &padded(101)).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (413, "body_too_large")
    );

    let answer: serde_json::Value = serde_json::from_slice(
        &http(s.addr(), "POST", "/api/dev/token", &[], &padded(100))
            .await
            .2,
    )
    .expect("JSON");
    let token = answer["token"].as_str().expect("a token");
    let verifier = tandem::auth::Verifier::hs256(SECRET).with_leeway_s(0);
    let exp = verifier
        .verify(token, before)
        .expect("valid now")
        .expires_at
        .expect("an exp");
    assert!(
        (before + ttl.as_secs()..=after + 1 + ttl.as_secs()).contains(&exp),
        "exp {exp} for a ttl of {ttl:?} signed at {before}..{after}"
    );
    assert!(verifier.verify(token, exp).is_ok());
    assert!(
        verifier.verify(token, exp + 1).is_err(),
        "expired after its ttl"
    );
}
