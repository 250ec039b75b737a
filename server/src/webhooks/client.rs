//! The HTTP client that posts events: hyper 1's pooled client (keep-alive connections per
//! receiver), with rustls for `https` endpoints (the Mozilla roots compiled in, ring as the
//! crypto provider) and plain TCP for `http`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How much of a receiver's answer is read (and dropped), so its connection can be reused; a
/// larger answer costs the connection, not memory.
const ANSWER_READ_MAX_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Client {
    pub fn new() -> Client {
        let mut http = HttpConnector::new();
        // Webhook URLs name their scheme; the https connector wraps this one.
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// POSTs `body` with `headers`; `Ok` for a 2xx answer within `timeout`, else why not.
    pub async fn post(
        &self,
        url: &Uri,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut request = hyper::Request::post(url.clone())
            .header("content-type", "application/json")
            .header("user-agent", "tandem-webhooks");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let exchange = async {
            let answer = self
                .inner
                .request(request)
                .await
                .map_err(|e| format!("request failed: {}", source_chain(&e)))?;
            let status = answer.status();
            let _ = Limited::new(answer.into_body(), ANSWER_READ_MAX_BYTES)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs_f64()))?
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// An error with its causes ("connection refused" hides under hyper's "client error").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
