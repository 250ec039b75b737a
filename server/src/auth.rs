//! Who may open which document: JWT verification and per-document roles.
//!
//! A token's claims carry `sub` (the author written next to every update), an optional `name`,
//! and `docs`, a map from document-name patterns to roles. `*` matches within one path segment,
//! `**` across segments, and the most specific matching pattern decides. Documents under
//! `private/<segment>/` belong to the one `sub` that segment spells (`space.rs`), whatever the
//! patterns say.
//!
//! Time is passed in (`now` in seconds since the epoch) so that expiry is tested exactly.

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a socket or request may do with a document. Ordered: each role includes the previous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Receives the document and presence; may publish its own presence; its edits are refused.
    Read,
    Write,
    /// Write, plus deleting documents and reading history over HTTP.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (read, write or admin)")),
        }
    }
}

/// The claims tandem reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub docs: HashMap<String, Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub sub: String,
    pub name: Option<String>,
    /// The segment of the caller's private space: `private/<space>/...` (see `space.rs`).
    space: String,
    docs: Vec<(Pattern, Role)>,
    /// Seconds since the epoch; the socket is closed then.
    pub expires_at: Option<u64>,
    /// Open development mode: every document, write access.
    dev: bool,
}

impl Principal {
    /// The caller of open development mode.
    pub fn dev(sub: &str) -> Self {
        Principal {
            sub: sub.to_string(),
            name: None,
            space: crate::space::segment_of(sub).unwrap_or_default(),
            docs: Vec::new(),
            expires_at: None,
            dev: true,
        }
    }

    /// The segment of this caller's private space (`private/<space>/...`).
    pub fn space(&self) -> &str {
        &self.space
    }

    /// The role this caller has on `doc`, or `None` for no access.
    pub fn role_for(&self, doc: &str) -> Option<Role> {
        if self.dev {
            return Some(Role::Write);
        }
        if let Some(owner) = crate::space::owner_of(doc) {
            // A private space belongs to its owner alone. The owner may always write there; a
            // pattern may raise that to admin but never lower it.
            if owner != self.space || owner.is_empty() {
                return None;
            }
            return Some(
                self.pattern_role(doc)
                    .map_or(Role::Write, |r| r.max(Role::Write)),
            );
        }
        self.pattern_role(doc)
    }

    /// Whether the caller administers the whole server: open development mode, or a token whose
    /// `docs` grant `admin` on `**` (every document). Server-wide endpoints (the webhook admin
    /// API) ask this; no grant on some documents adds up to it.
    pub fn admin_everywhere(&self) -> bool {
        self.dev
            || self
                .docs
                .iter()
                .any(|(p, role)| *role == Role::Admin && p.segments == ["**"])
    }

    fn pattern_role(&self, doc: &str) -> Option<Role> {
        self.docs
            .iter()
            .filter(|(p, _)| p.matches(doc))
            .max_by_key(|(p, role)| (p.specificity(), *role))
            .map(|(_, role)| *role)
    }
}

/// True when `doc` matches a `docs`-style pattern (`notes/*`, `private/ada/**`).
pub fn pattern_matches(pattern: &str, doc: &str) -> bool {
    Pattern::new(pattern).matches(doc)
}

/// A document-name pattern from a token's `docs` claim.
#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<String>,
}

impl Pattern {
    fn new(raw: &str) -> Self {
        Pattern {
            segments: raw.split('/').map(str::to_string).collect(),
        }
    }

    fn matches(&self, doc: &str) -> bool {
        let doc: Vec<&str> = doc.split('/').collect();
        match_segments(&self.segments, &doc)
    }

    /// Literal characters first (a longer literal is more specific), then fewer `**`, then
    /// fewer `*`: `notes/42` beats `notes/*` beats `notes/**` beats `**`.
    fn specificity(&self) -> (usize, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>) {
        let literal = self
            .segments
            .iter()
            .map(|s| s.chars().filter(|c| *c != '*').count())
            .sum();
        let globstars = self.segments.iter().filter(|s| *s == "**").count();
        let stars = self
            .segments
            .iter()
            .map(|s| s.matches('*').count())
            .sum::<usize>();
        (
            literal,
            std::cmp::Reverse(globstars),
            std::cmp::Reverse(stars),
        )
    }
}

fn match_segments(pattern: &[String], doc: &[&str]) -> bool {
    match pattern.split_first() {
        None => doc.is_empty(),
        Some((first, rest)) if first == "**" => {
            // `**` takes zero or more whole segments (at least one when it is the last one).
            (0..=doc.len()).any(|k| (k > 0 || !rest.is_empty()) && match_segments(rest, &doc[k..]))
        }
        Some((first, rest)) => match doc.split_first() {
            Some((seg, doc_rest)) => {
                match_segment(first.as_bytes(), seg.as_bytes()) && match_segments(rest, doc_rest)
            }
            None => false,
        },
    }
}

/// Glob within one segment: `*` matches any run of characters (not `/`, which cannot occur here).
fn match_segment(pattern: &[u8], seg: &[u8]) -> bool {
    match pattern.split_first() {
        None => seg.is_empty(),
        Some((b'*', rest)) => (0..=seg.len()).any(|k| match_segment(rest, &seg[k..])),
        Some((c, rest)) => seg
            .split_first()
            .is_some_and(|(s, seg_rest)| s == c && match_segment(rest, seg_rest)),
    }
}

/// 32 bytes from the kernel's random source (the time and process id where there is none): the
/// signing key of open development mode's dev tokens, which lives as long as the process.
pub fn ephemeral_secret() -> Vec<u8> {
    use std::io::Read;
    let mut secret = vec![0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut secret));
    if read.is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        secret = seed.into_bytes();
    }
    secret
}

/// Why a token was refused. Each maps to HTTP 401 with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required (?token= or Authorization: Bearer)")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer or audience is not accepted")]
    WrongIssuerOrAudience,
    /// Without `exp` a token never expires, and there is no revocation: refused unless the
    /// operator opts in (`--jwt-allow-no-exp`).
    #[error("the token has no exp claim; this server accepts only tokens that expire")]
    NoExpiry,
    #[error(
        "the token's sub is too long to name a private space (at most {max} bytes once written as a document-name segment)",
        max = crate::space::SEGMENT_LEN_MAX_BYTES
    )]
    SubTooLong,
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Malformed => "token_malformed",
            AuthError::BadSignature => "token_bad_signature",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::WrongIssuerOrAudience => "token_wrong_issuer_or_audience",
            AuthError::NoExpiry => "token_no_expiry",
            AuthError::SubTooLong => "token_sub_too_long",
        }
    }
}

/// Allowed clock difference between token issuer and this server, in seconds (the default of
/// `--jwt-leeway-s`): NTP keeps clocks within milliseconds, 30 s forgives a VM resumed late.
pub const CLOCK_SKEW_LEEWAY_S: u64 = 30;

/// How tokens are checked; `None` in [`crate::config::Config`] means open development mode.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    leeway_s: u64,
    /// Accept tokens without `exp` (service tokens); off unless the operator opts in.
    allow_no_exp: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

impl Verifier {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(DecodingKey::from_secret(secret), vec![Algorithm::HS256])
    }

    /// RS256 or EdDSA with a PEM public key (the kind is read from the PEM).
    pub fn public_key_pem(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(path)?;
        if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
            return Ok(Self::with(key, vec![Algorithm::EdDSA]));
        }
        let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
            anyhow::anyhow!(
                "{} is neither an Ed25519 nor an RSA public key: {e}",
                path.display()
            )
        })?;
        Ok(Self::with(key, vec![Algorithm::RS256]))
    }

    fn with(key: DecodingKey, algorithms: Vec<Algorithm>) -> Self {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        // Expiry and not-before are checked by `verify` against the `now` it is given.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Verifier {
            key,
            validation,
            leeway_s: CLOCK_SKEW_LEEWAY_S,
            allow_no_exp: false,
        }
    }

    /// Accepts tokens without `exp`, which never expire (`--jwt-allow-no-exp`).
    pub fn allowing_no_exp(mut self, allow: bool) -> Self {
        self.allow_no_exp = allow;
        self
    }

    /// Overrides the allowed clock skew (tests use 0 to make expiry exact).
    pub fn with_leeway_s(mut self, leeway_s: u64) -> Self {
        self.leeway_s = leeway_s;
        self
    }

    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self
    }

    pub fn with_audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self
    }

    pub fn verify(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                    AuthError::WrongIssuerOrAudience
                }
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Malformed,
            },
        )?;
        let claims = data.claims;
        if claims.exp.is_none() && !self.allow_no_exp {
            return Err(AuthError::NoExpiry);
        }
        if claims
            .exp
            .is_some_and(|exp| now > exp.saturating_add(self.leeway_s))
        {
            return Err(AuthError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(self.leeway_s) < nbf)
        {
            return Err(AuthError::NotYetValid);
        }
        if claims.sub.is_empty() {
            return Err(AuthError::Malformed);
        }
        let space = crate::space::segment_of(&claims.sub).ok_or(AuthError::SubTooLong)?;
        Ok(Principal {
            sub: claims.sub,
            name: claims.name,
            space,
            docs: claims
                .docs
                .iter()
                .map(|(p, r)| (Pattern::new(p), *r))
                .collect(),
            expires_at: claims.exp.map(|e| e.saturating_add(self.leeway_s)),
            dev: false,
        })
    }
}

/// Seconds since the epoch, the `now` of token checks.
pub use crate::clock::now_s;

/// Signs a token with an HS256 secret: the dev token helper (`tandem token`).
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";
    const NOW: u64 = 1_800_000_000;

    fn claims(sub: &str, docs: &[(&str, Role)]) -> Claims {
        Claims {
            sub: sub.into(),
            name: None,
            docs: docs.iter().map(|(p, r)| (p.to_string(), *r)).collect(),
            exp: Some(NOW + 3600),
            nbf: None,
            iss: None,
            aud: None,
        }
    }

    fn principal(sub: &str, docs: &[(&str, Role)]) -> Principal {
        let token = mint_hs256(SECRET, &claims(sub, docs)).expect("mints");
        Verifier::hs256(SECRET)
            .verify(&token, NOW)
            .expect("verifies")
    }

    // Table of (patterns, document, expected role): one function checks every case.
    #[test]
    fn roles_from_patterns() {
        use Role::*;
        type Case<'a> = (&'a [(&'a str, Role)], &'a str, Option<Role>);
        let cases: &[Case] = &[
            (&[("notes/1", Write)], "notes/1", Some(Write)),
            (&[("notes/1", Write)], "notes/2", None),
            (&[("notes/*", Write)], "notes/2", Some(Write)),
            (&[("notes/*", Write)], "notes/2/x", None),
            (&[("notes/**", Read)], "notes/2/x", Some(Read)),
            (&[("notes/**", Read)], "notes", None),
            (&[("*", Read)], "a", Some(Read)),
            (&[("*", Read)], "a/b", None),
            (&[("**", Read)], "a/b/c", Some(Read)),
            (
                &[("notes/*", Write), ("contacts/42", Read), ("*", Read)],
                "contacts/42",
                Some(Read),
            ),
            (
                &[("notes/*", Read), ("notes/42", Admin)],
                "notes/42",
                Some(Admin),
            ),
            (
                &[("notes/42", Read), ("notes/*", Admin)],
                "notes/42",
                Some(Read),
            ),
            (&[("**", Admin), ("notes/*", Read)], "notes/7", Some(Read)),
            (&[("n*s/*", Write)], "notes/7", Some(Write)),
            (&[("private/**", Admin)], "private/bob/x", None),
            (&[("**", Write)], "private/bob/x", None),
            (&[], "private/alice/x", Some(Write)),
            (
                &[("private/alice/**", Admin)],
                "private/alice/x",
                Some(Admin),
            ),
            (
                &[("private/alice/**", Read)],
                "private/alice/x",
                Some(Write),
            ),
        ];
        for (docs, doc, expected) in cases {
            assert_eq!(
                principal("alice", docs).role_for(doc),
                *expected,
                "{docs:?} on {doc}"
            );
        }
    }

    // A sub that is not a plain name owns the space its segment spells, and only that one.
    #[test]
    fn private_space_of_an_escaped_sub() {
        let p = principal("auth0|42", &[("**", Role::Admin)]);
        assert_eq!(p.space(), "auth0~7C42");
        assert_eq!(p.role_for("private/auth0~7C42/notes/1"), Some(Role::Admin));
        assert_eq!(p.role_for("private/auth0|42/notes/1"), None);
        assert_eq!(
            principal("auth0~7C42", &[]).role_for("private/auth0~7C42/x"),
            None,
            "a sub spelling another's segment does not own it"
        );
    }

    #[test]
    fn refusals() {
        let v = Verifier::hs256(SECRET);
        let good = mint_hs256(SECRET, &claims("a", &[])).expect("mints");
        assert!(v.verify(&good, NOW).is_ok());
        assert_eq!(
            v.verify("not.a.token", NOW).err(),
            Some(AuthError::Malformed)
        );
        let forged = mint_hs256(b"other", &claims("a", &[])).expect("mints");
        assert_eq!(v.verify(&forged, NOW).err(), Some(AuthError::BadSignature));
        let mut late = claims("a", &[]);
        late.exp = Some(NOW - 100);
        let late = mint_hs256(SECRET, &late).expect("mints");
        assert_eq!(v.verify(&late, NOW).err(), Some(AuthError::Expired));
        let mut forever = claims("a", &[]);
        forever.exp = None;
        let forever = mint_hs256(SECRET, &forever).expect("mints");
        assert_eq!(v.verify(&forever, NOW).err(), Some(AuthError::NoExpiry));
        let service = Verifier::hs256(SECRET).allowing_no_exp(true);
        assert_eq!(
            service.verify(&forever, NOW).expect("opted in").expires_at,
            None
        );
        let long_sub = mint_hs256(SECRET, &claims(&"é".repeat(22), &[])).expect("mints");
        assert_eq!(v.verify(&long_sub, NOW).err(), Some(AuthError::SubTooLong));
        let mut early = claims("a", &[]);
        early.nbf = Some(NOW + 100);
        let early = mint_hs256(SECRET, &early).expect("mints");
        assert_eq!(v.verify(&early, NOW).err(), Some(AuthError::NotYetValid));
        let mut with_iss = claims("a", &[]);
        with_iss.iss = Some("someone".into());
        let with_iss = mint_hs256(SECRET, &with_iss).expect("mints");
        assert_eq!(
            Verifier::hs256(SECRET)
                .with_issuer("tandem")
                .verify(&with_iss, NOW)
                .err(),
            Some(AuthError::WrongIssuerOrAudience)
        );
    }

    // RS256 and EdDSA tokens verify against their PEM public keys, and not against each other's.
    #[test]
    fn public_key_algorithms() {
        let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
        let sign = |alg: Algorithm, private: &str| {
            let pem = std::fs::read(keys.join(private)).expect("test key");
            let key = match alg {
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            }
            .expect("parses");
            jsonwebtoken::encode(&Header::new(alg), &claims("k", &[("d", Role::Write)]), &key)
                .expect("signs")
        };
        let ed = Verifier::public_key_pem(&keys.join("ed25519.pub.pem")).expect("ed25519 key");
        let rsa = Verifier::public_key_pem(&keys.join("rsa.pub.pem")).expect("rsa key");
        let ed_token = sign(Algorithm::EdDSA, "ed25519.pem");
        let rsa_token = sign(Algorithm::RS256, "rsa.pem");
        assert_eq!(
            ed.verify(&ed_token, NOW).expect("eddsa").role_for("d"),
            Some(Role::Write)
        );
        assert_eq!(rsa.verify(&rsa_token, NOW).expect("rs256").sub, "k");
        assert_eq!(
            ed.verify(&rsa_token, NOW).err(),
            Some(AuthError::BadSignature)
        );
        assert_eq!(
            rsa.verify(&ed_token, NOW).err(),
            Some(AuthError::BadSignature)
        );
        let hs = mint_hs256(SECRET, &claims("k", &[])).expect("mints");
        assert_eq!(
            rsa.verify(&hs, NOW).err(),
            Some(AuthError::BadSignature),
            "no algorithm confusion"
        );
    }

    // Expiry is exact at the edge (with the documented leeway).
    #[test]
    fn expiry_edge() {
        let v = Verifier::hs256(SECRET);
        let token = mint_hs256(SECRET, &claims("a", &[])).expect("mints");
        let exp = NOW + 3600;
        assert!(v.verify(&token, exp + CLOCK_SKEW_LEEWAY_S).is_ok());
        assert_eq!(
            v.verify(&token, exp + CLOCK_SKEW_LEEWAY_S + 1).err(),
            Some(AuthError::Expired)
        );
    }
}
