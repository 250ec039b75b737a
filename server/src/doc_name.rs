//! Document names: the one place that decides what a valid name is.

/// Longest document name, in bytes.
pub const DOC_NAME_LEN_MAX_BYTES: usize = 255;

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
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'/' | b'-'))
    {
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

#[cfg(test)]
mod tests {
    use super::validate;

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
}
