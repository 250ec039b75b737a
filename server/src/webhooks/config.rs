//! Webhook settings: the endpoints (`--webhook`, repeatable), the secret, and the limits and
//! timers of delivery, each with its reason. The outbox bound per endpoint is a store setting
//! (`--webhook-outbox-len-max`, in `crate::config::StoreFlags`), since the store keeps it.
//!
//! An endpoint is written `URL[;events=PATTERNS][;docs=PATTERNS]`:
//! `https://hooks.example/tandem;events=issue.*,note.created;docs=team/*,issues/**`.
//! Event patterns are an exact type, `prefix.*` or `*`; document patterns are the token `docs`
//! patterns (`*` one segment, `**` any number). Without a filter an endpoint gets every event.

use std::time::Duration;

use clap::Args;
use sha2::{Digest, Sha256};

/// One configured receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Stable across restarts (a hash of the whole spec), so the outbox it names survives them;
    /// changing the spec starts a new outbox.
    pub id: String,
    pub url: hyper::Uri,
    /// Event type patterns; empty means every event.
    pub events: Vec<String>,
    /// Document name patterns; empty means every document.
    pub docs: Vec<String>,
}

impl Endpoint {
    /// Parses `URL[;events=...][;docs=...]`.
    pub fn parse(spec: &str) -> Result<Endpoint, String> {
        let mut parts = spec.trim().split(';');
        let url_text = parts.next().unwrap_or_default().trim();
        let url: hyper::Uri = url_text
            .parse()
            .map_err(|e| format!("webhook {url_text:?}: not a URL ({e})"))?;
        match url.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(format!(
                    "webhook {url_text:?}: the URL must be http or https"
                ))
            }
        }
        if url.host().is_none() {
            return Err(format!("webhook {url_text:?}: the URL has no host"));
        }
        let mut endpoint = Endpoint {
            id: endpoint_id(spec.trim()),
            url,
            events: Vec::new(),
            docs: Vec::new(),
        };
        for part in parts {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("webhook option {part:?} is not name=value"))?;
            let list: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            match name.trim() {
                "events" => endpoint.events = list,
                "docs" => endpoint.docs = list,
                other => {
                    return Err(format!(
                        "webhook option {other:?} is unknown (events=, docs=)"
                    ))
                }
            }
        }
        Ok(endpoint)
    }

    /// Whether this endpoint takes events of type `event` about `doc`.
    pub fn wants(&self, event: &str, doc: &str) -> bool {
        let event_ok = self.events.is_empty()
            || self.events.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event.starts_with(prefix),
                None => p == event,
            });
        let doc_ok = self.docs.is_empty()
            || self
                .docs
                .iter()
                .any(|p| crate::auth::pattern_matches(p, doc));
        event_ok && doc_ok
    }

    /// The URL as listed to admins: scheme, host and path, never the query (which may carry a
    /// receiver's own token).
    pub fn display_url(&self) -> String {
        let authority = self.url.authority().map_or("", |a| a.as_str());
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        format!(
            "{}://{}{}",
            self.url.scheme_str().unwrap_or("http"),
            authority,
            self.url.path()
        )
    }
}

fn endpoint_id(spec: &str) -> String {
    let digest = Sha256::digest(spec.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text)
}

/// The webhook flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookConfig {
    /// A receiver of change events, repeatable: `URL[;events=issue.*,note.created][;docs=team/*]`.
    ///
    /// In TANDEM_WEBHOOKS several are separated by spaces.
    #[arg(long = "webhook", env = "TANDEM_WEBHOOKS", value_delimiter = ' ', value_parser = endpoint)]
    pub endpoints: Vec<Endpoint>,
    /// The key of every request's X-Tandem-Signature (HMAC-SHA256); required with --webhook.
    #[arg(long, env = "TANDEM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Also send `document.updated` for every change: the Yjs update (base64) and the state
    /// vector after it, so a receiver can keep an exact replica.
    #[arg(long, env = "TANDEM_WEBHOOK_DOCUMENT_UPDATES")]
    pub webhook_document_updates: bool,
    /// How long one delivery may take, in seconds, before it counts as failed and is retried.
    ///
    /// 10 s is far beyond a healthy receiver's answer, short enough that a hung one costs its
    /// own endpoint a few retries, never anyone else (each endpoint has its own task).
    #[arg(long = "webhook-timeout-s", help_heading = "Webhook limits", value_name = "S", env = "TANDEM_WEBHOOK_TIMEOUT_S", value_parser = crate::config::positive_seconds, default_value = crate::config::seconds_text(WebhookConfig::default().timeout))]
    pub timeout: Duration,
    /// How long an event is retried, in seconds from the change, before it is parked as dead.
    ///
    /// 24 h outlasts a receiver's outage over a night or a weekend day; after it the event
    /// waits in the dead list (GET /api/admin/webhooks) for a retry by hand.
    #[arg(long = "webhook-age-max-s", help_heading = "Webhook limits", value_name = "S", env = "TANDEM_WEBHOOK_AGE_MAX_S", value_parser = crate::config::positive_seconds, default_value = crate::config::seconds_text(WebhookConfig::default().age_max))]
    pub age_max: Duration,
    /// The first retry's delay, in milliseconds; each further one doubles it (with jitter).
    ///
    /// 1 s rides out a receiver's restart; doubling keeps a dead receiver from costing more
    /// than a request per `--webhook-backoff-max-s`.
    #[arg(long = "webhook-backoff-first-ms", help_heading = "Webhook limits", value_name = "MS", env = "TANDEM_WEBHOOK_BACKOFF_FIRST_MS", value_parser = crate::config::positive_millis, default_value = crate::config::millis_text(WebhookConfig::default().backoff_first))]
    pub backoff_first: Duration,
    /// The longest delay between two retries, in seconds.
    ///
    /// 10 minutes: a receiver back from an outage gets its events within minutes.
    #[arg(long = "webhook-backoff-max-s", help_heading = "Webhook limits", value_name = "S", env = "TANDEM_WEBHOOK_BACKOFF_MAX_S", value_parser = crate::config::positive_seconds, default_value = crate::config::seconds_text(WebhookConfig::default().backoff_max))]
    pub backoff_max: Duration,
    /// How often an idle endpoint looks at its outbox, in milliseconds (cluster mode: the
    /// events other nodes queued; one node: a backstop to the wake-up after each commit).
    ///
    /// 500 ms bounds the extra latency of an event queued by another node.
    #[arg(long = "webhook-poll-interval-ms", help_heading = "Webhook limits", value_name = "MS", env = "TANDEM_WEBHOOK_POLL_INTERVAL_MS", value_parser = crate::config::positive_millis, default_value = crate::config::millis_text(WebhookConfig::default().poll_interval))]
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            endpoints: Vec::new(),
            webhook_secret: None,
            webhook_document_updates: false,
            timeout: Duration::from_secs(10),
            age_max: Duration::from_secs(24 * 3600),
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl WebhookConfig {
    /// Refuses endpoints without a secret (a receiver could not tell our requests from anyone's)
    /// and the same endpoint twice (two tasks would deliver one outbox).
    pub fn check(&self) -> Result<(), String> {
        if !self.endpoints.is_empty() && self.webhook_secret.as_deref().unwrap_or("").is_empty() {
            return Err("--webhook needs --webhook-secret (TANDEM_WEBHOOK_SECRET)".into());
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if self.endpoints[..i].iter().any(|o| o.id == e.id) {
                return Err(format!("webhook {} is configured twice", e.display_url()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_refuses_what_it_cannot_use() {
        let e = Endpoint::parse("https://x.example/h?k=1;events=issue.*,note.created;docs=team/*")
            .expect("parses");
        assert_eq!(e.events, vec!["issue.*", "note.created"]);
        assert_eq!(e.docs, vec!["team/*"]);
        assert_eq!(e.display_url(), "https://x.example/h");
        assert_eq!(e.id.len(), 12);
        for (event, doc, wanted) in [
            ("issue.status_changed", "team/1", true),
            ("note.created", "team/2", true),
            ("note.updated", "team/2", false),
            ("issue.created", "other/1", false),
            ("issue.created", "team/a/b", false),
        ] {
            assert_eq!(e.wants(event, doc), wanted, "{event} on {doc}");
        }
        let all = Endpoint::parse("http://127.0.0.1:9/").expect("parses");
        assert!(all.wants("anything", "any/doc"));
        for bad in [
            "ftp://x/",
            "not a url",
            "/relative",
            "http://x/;colour=red",
            "http://x/;events",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_need_a_secret() {
        let mut c = WebhookConfig {
            endpoints: vec![Endpoint::parse("http://127.0.0.1:9/").expect("parses")],
            ..WebhookConfig::default()
        };
        assert!(c.check().is_err());
        c.webhook_secret = Some("s".into());
        assert!(c.check().is_ok());
        c.endpoints.push(c.endpoints[0].clone());
        assert!(c.check().is_err(), "twice");
    }
}
