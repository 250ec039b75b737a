//! Private spaces: the document-name segment a token's `sub` owns (`private/<segment>/...`).
//!
//! A `sub` is whatever the identity provider chose (`auth0|42`, an e-mail address, a name with
//! accents), but a document name is 1 to 255 bytes of `[A-Za-z0-9._~/-]` (`doc_name.rs`). So that
//! every owner can reach their space over the websocket, REST and `/api/docs` alike, each `sub` is
//! written as one valid segment, the same way everywhere: bytes outside `A-Z a-z 0-9 _ -` are
//! written `~HH` (upper-case hex), and so is a `.` that starts the segment or follows another `.`
//! (a `.` segment would be dropped by URL normalisation, `..` is refused in names). `~` is always
//! escaped, so two different subs never share a segment. A sub that is already a plain name
//! (`alice`, `ada.lovelace`, `u-42`) is its own segment.

use crate::doc_name::ID_LEN_MAX_BYTES;

/// Longest segment, in bytes. A private note is `private/<segment>/notes/<id>` with an id of up
/// to `ID_LEN_MAX_BYTES` (64): 128 keeps that within the 255 bytes of a document name, and holds
/// every common provider's `sub` (UUIDs, `auth0|...`, 43-character Azure ids, most e-mail
/// addresses).
pub const SEGMENT_LEN_MAX_BYTES: usize = 128;

/// The segment `sub` owns, or `None` when it would be longer than [`SEGMENT_LEN_MAX_BYTES`].
pub fn segment_of(sub: &str) -> Option<String> {
    let mut out = String::with_capacity(sub.len());
    let mut previous = None;
    for b in sub.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'-')
            || (b == b'.' && previous.is_some_and(|p| p != b'.'));
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
        previous = Some(b);
        if out.len() > SEGMENT_LEN_MAX_BYTES {
            return None;
        }
    }
    Some(out)
}

/// Whether `sub` is a name `POST /api/dev/token` may sign a token for: a plain name that is its
/// own segment (the web demo builds `private/<sub>/...` itself) and no longer than an id
/// (`doc_name::ID_LEN_MAX_BYTES`; the demo's sign-in, `session.js`, makes such names).
pub fn is_login_name(sub: &str) -> bool {
    (1..=ID_LEN_MAX_BYTES).contains(&sub.len()) && segment_of(sub).as_deref() == Some(sub)
}

/// The rule of [`is_login_name`] in words.
pub fn login_name_rule() -> String {
    format!(
        "sub: 1 to {ID_LEN_MAX_BYTES} characters of A-Z a-z 0-9 - _ . (a '.' neither first nor doubled)"
    )
}

/// The owner segment of a document name in a private space (`private/<segment>/...`).
pub fn owner_of(doc: &str) -> Option<&str> {
    doc.strip_prefix("private/")
        .map(|rest| rest.split('/').next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    // One table: the sub, and the segment it owns (`None`: refused as too long).
    #[test]
    fn segments() {
        let long_ok = "a".repeat(SEGMENT_LEN_MAX_BYTES);
        let too_long = "a".repeat(SEGMENT_LEN_MAX_BYTES + 1);
        let cases: &[(&str, Option<&str>)] = &[
            ("alice", Some("alice")),
            ("ada.lovelace", Some("ada.lovelace")),
            ("u_4-2", Some("u_4-2")),
            ("auth0|42", Some("auth0~7C42")),
            ("ålice", Some("~C3~A5lice")),
            ("a b", Some("a~20b")),
            ("a\nb", Some("a~0Ab")),
            ("a\tb", Some("a~09b")),
            ("a/b", Some("a~2Fb")),
            ("%2e%2e", Some("~252e~252e")),
            (".", Some("~2E")),
            ("..", Some("~2E~2E")),
            ("a..b", Some("a.~2Eb")),
            (".hidden", Some("~2Ehidden")),
            ("a~7C", Some("a~7E7C")),
            (long_ok.as_str(), Some(long_ok.as_str())),
            (too_long.as_str(), None),
        ];
        for (sub, expected) in cases {
            assert_eq!(segment_of(sub).as_deref(), *expected, "{sub:?}");
        }
        // 22 two-byte characters are 132 bytes once escaped: refused, though only 44 bytes raw.
        assert_eq!(segment_of(&"é".repeat(22)), None);
        assert_eq!(
            segment_of(&"é".repeat(21)).map(|s| s.len()),
            Some(126),
            "21 fit"
        );
    }

    // Login names: plain names up to an id's length; anything escaped, or longer, is refused.
    #[test]
    fn login_names() {
        let longest = "a".repeat(ID_LEN_MAX_BYTES);
        let too_long = "a".repeat(ID_LEN_MAX_BYTES + 1);
        for ok in ["ada", "ada.lovelace", "u_4-2", longest.as_str()] {
            assert!(is_login_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".ada",
            "a..b",
            "a~b",
            "a b",
            "auth0|42",
            too_long.as_str(),
        ] {
            assert!(!is_login_name(bad), "{bad:?}");
        }
        assert_eq!(
            login_name_rule(),
            "sub: 1 to 64 characters of A-Z a-z 0-9 - _ . (a '.' neither first nor doubled)"
        );
    }

    // Every segment makes valid document names, even for the longest id, and different subs
    // never share one.
    #[test]
    fn segments_are_valid_names_and_distinct() {
        let id = "i".repeat(ID_LEN_MAX_BYTES);
        let mut seen = std::collections::HashMap::new();
        let mut sub = Vec::new();
        // Every string of up to three bytes from a hostile alphabet.
        let alphabet: &[u8] = b"a.~%/ \n\x00\xff-_Z";
        for len in 1..=3u32 {
            for n in 0..alphabet.len().pow(len) {
                sub.clear();
                let mut k = n;
                for _ in 0..len {
                    sub.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                let sub = String::from_utf8_lossy(&sub).into_owned();
                let segment = segment_of(&sub).expect("short subs fit");
                for name in [
                    format!("private/{segment}/notes/{id}"),
                    format!("private/{segment}/index"),
                ] {
                    assert_eq!(crate::doc_name::validate(&name), Ok(()), "{sub:?} → {name}");
                }
                assert_eq!(owner_of(&format!("private/{segment}/x")), Some(&*segment));
                if let Some(other) = seen.insert(segment.clone(), sub.clone()) {
                    assert_eq!(other, sub, "two subs own {segment}");
                }
            }
        }
        let longest = "a".repeat(SEGMENT_LEN_MAX_BYTES);
        let name = format!("private/{longest}/notes/{id}");
        assert_eq!(crate::doc_name::validate(&name), Ok(()), "{name}");
    }
}
