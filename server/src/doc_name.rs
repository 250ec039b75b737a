//! Document names and the ids in them: the one place that decides what a valid name is, what a
//! valid id of a typed document is (`notes/<id>`, a reply's id), and how a fresh id is made.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Longest document name, in bytes.
pub const DOC_NAME_LEN_MAX_BYTES: usize = 255;

/// Longest id of a typed document or of a reply or comment, in bytes. 64 holds the ids clients
/// make (UUIDs, slugs, the web demo's 10 characters) and keeps `private/<space>/notes/<id>` within
/// a name's 255 bytes next to the longest space segment (`space::SEGMENT_LEN_MAX_BYTES`, 128).
///
/// A constant rather than a flag in `config.rs`: the OpenAPI document states it in every id's
/// pattern ([`id_pattern`]), and the private-space arithmetic above depends on it.
pub const ID_LEN_MAX_BYTES: usize = 64;

/// The bytes of one name segment besides letters and digits (`/` separates segments).
const SEGMENT_PUNCTUATION: &[u8] = b"._~-";

fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || SEGMENT_PUNCTUATION.contains(&b)
}

/// Checks a document name taken from a URL path: 1 to 255 bytes of `[A-Za-z0-9._~/-]`, no `..`
/// segment-escape, no empty segment or leading/trailing `/`. Names reach the store as keys and
/// appear in logs, so anything outside this set is refused before a socket is upgraded.
pub fn validate(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("document name is empty");
    }
    if name.len() > DOC_NAME_LEN_MAX_BYTES {
        return Err("document name is longer than 255 bytes");
    }
    if !name.bytes().all(|b| is_segment_byte(b) || b == b'/') {
        return Err("document name may contain only A-Z a-z 0-9 . _ ~ / -");
    }
    if name.contains("..") {
        return Err("document name may not contain '..'");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("document name may not have empty path segments");
    }
    Ok(())
}

/// Checks an id: one name segment of 1 to [`ID_LEN_MAX_BYTES`] bytes that starts with a letter
/// or digit (so it is never `.` or `..`). On refusal, the rule for people ([`id_rule`]).
pub fn validate_id(id: &str) -> Result<(), String> {
    let ok = (1..=ID_LEN_MAX_BYTES).contains(&id.len())
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(is_segment_byte);
    if ok {
        Ok(())
    } else {
        Err(id_rule())
    }
}

/// The id rule in words.
pub fn id_rule() -> String {
    format!(
        "1 to {ID_LEN_MAX_BYTES} characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit"
    )
}

/// The id rule as the regular expression the OpenAPI document gives for every id.
pub fn id_pattern() -> String {
    format!("^[A-Za-z0-9][A-Za-z0-9._~-]{{0,{}}}$", ID_LEN_MAX_BYTES - 1)
}

/// A fresh id: 16 hex digits from the process's random hasher keys, the clock, the process id
/// and a counter, so two ids of one process never repeat and ids of different processes (a
/// cluster's nodes) do not collide. Always valid under [`validate_id`].
pub fn new_id() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Relaxed);
    let seed = (nanos, std::process::id(), n);
    format!(
        "{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(seed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        let long_ok = "a".repeat(255);
        let too_long = "a".repeat(256);
        for ok in ["a", "notes/42", "private/alice/x-1_2.~v", long_ok.as_str()] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "..",
            "a/../b",
            "a%2Fb",
            "/a",
            "a/",
            "a//b",
            "é",
            "a?b",
            too_long.as_str(),
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
    }

    // Ids at the edges of the rule: the longest passes and one byte more is refused; the first
    // byte is a letter or digit; every other byte is one of a name segment's.
    #[test]
    fn ids_accepted_and_refused() {
        let longest = "i".repeat(ID_LEN_MAX_BYTES);
        let too_long = "i".repeat(ID_LEN_MAX_BYTES + 1);
        for ok in ["a", "7", "a.b_c~d-e", "0123456789abcdef", longest.as_str()] {
            assert_eq!(validate_id(ok), Ok(()), "{ok}");
            assert_eq!(validate(&format!("notes/{ok}")), Ok(()), "{ok} in a name");
        }
        for bad in [
            "",
            ".a",
            "-a",
            "~a",
            "_a",
            "a/b",
            "a b",
            "é",
            too_long.as_str(),
        ] {
            assert_eq!(validate_id(bad), Err(id_rule()), "{bad:?} accepted");
        }
        assert_eq!(
            id_rule(),
            "1 to 64 characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit"
        );
        assert_eq!(id_pattern(), "^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$");
    }

    #[test]
    fn fresh_ids_are_valid_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(validate_id(id), Ok(()), "{id}");
        }
    }
}
