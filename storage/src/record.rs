//! The on-disk record format: every value in every tree is `crc32 (u32 LE) | version (u8) |
//! body`, the CRC covering version and body. Decoding checks the CRC and the body's shape and
//! never panics, so a flipped bit or a torn write surfaces as [`RecordError`], never as a wrong
//! document.

/// Format version of every record written by this build.
pub const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record too short ({0} bytes)")]
    Truncated(usize),
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("malformed record body: {0}")]
    Body(&'static str),
}

/// Wraps a body into a checksummed record.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Verifies a record and returns its body.
pub fn open(record: &[u8]) -> Result<&[u8], RecordError> {
    if record.len() < 5 {
        return Err(RecordError::Truncated(record.len()));
    }
    let stored = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
    let computed = crc32fast::hash(&record[4..]);
    if stored != computed {
        return Err(RecordError::Checksum { stored, computed });
    }
    match record[4] {
        VERSION => Ok(&record[5..]),
        other => Err(RecordError::Version(other)),
    }
}

/// A cursor over a record body.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Reader(body)
    }

    pub fn u64(&mut self) -> Result<u64, RecordError> {
        let (head, rest) = self.0.split_at_checked(8).ok_or(RecordError::Body("u64"))?;
        self.0 = rest;
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        Ok(u64::from_le_bytes(b))
    }

    pub fn bytes16(&mut self) -> Result<&'a [u8], RecordError> {
        let (len, rest) = self
            .0
            .split_at_checked(2)
            .ok_or(RecordError::Body("length"))?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let (data, rest) = rest
            .split_at_checked(len)
            .ok_or(RecordError::Body("bytes"))?;
        self.0 = rest;
        Ok(data)
    }

    pub fn rest(self) -> &'a [u8] {
        self.0
    }

    pub fn end(self) -> Result<(), RecordError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RecordError::Body("trailing bytes"))
        }
    }
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A length-prefixed (u16) string, truncated to 65,535 bytes at a character boundary.
pub fn put_str16(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let len = u16::try_from(end).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Seal then open returns the body; any single flipped bit anywhere is detected.
    #[test]
    fn every_bit_flip_is_detected() {
        let record = seal(b"hello, durable world");
        assert_eq!(open(&record), Ok(&b"hello, durable world"[..]));
        for byte in 0..record.len() {
            for bit in 0..8 {
                let mut bad = record.clone();
                bad[byte] ^= 1 << bit;
                assert!(open(&bad).is_err(), "flip at {byte}:{bit} undetected");
            }
        }
    }

    #[test]
    fn truncations_are_detected() {
        let record = seal(b"0123456789");
        for len in 0..record.len() {
            assert!(open(&record[..len]).is_err(), "truncated to {len} accepted");
        }
    }

    #[test]
    fn reader_refuses_short_bodies() {
        let mut body = Vec::new();
        put_u64(&mut body, 7);
        put_str16(&mut body, "ada");
        let mut r = Reader::new(&body);
        assert_eq!(r.u64(), Ok(7));
        assert_eq!(r.bytes16(), Ok(&b"ada"[..]));
        assert!(r.end().is_ok());
        for len in 0..body.len() {
            let mut r = Reader::new(&body[..len]);
            assert!(r.u64().and_then(|_| r.bytes16()).is_err());
        }
    }
}
