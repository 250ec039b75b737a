//! Authentication against the in-process server over real sockets and HTTP: how a token is
//! found, which tokens are refused and with which code, and what a valid token is never refused
//! for.

mod common;

use common::*;
use tandem::auth::Role;

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
