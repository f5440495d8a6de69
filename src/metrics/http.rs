//! The admin HTTP endpoint, served by shard 0 only: `GET /metrics` answers 200 with every
//! shard's metrics merged into Prometheus text; any other path or method answers 404.
//!
//! Invariants: a minimal HTTP/1.1 server, one request per connection (the response says
//! `Connection: close` and the connection is closed after it); a request head larger than
//! `REQUEST_HEAD_MAX_BYTES`, or not complete within `REQUEST_TIMEOUT`, is answered with an
//! error status (or dropped) and never buffered further; at most `CONNECTIONS_MAX` admin
//! connections are served at once (more are closed on accept). A shard that does not answer the
//! snapshot call (shutting down) is left out of the scrape, never waited on forever. With
//! `admin.auth.token` set, a request without `Authorization: Bearer <token>` gets 401 (and an
//! audit line). `admin.listen` defaults to loopback.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use futures_util::future::{select, Either};

use futures_util::future::LocalBoxFuture;

use super::{text, MetricsError, ShardSnapshot};

/// Largest request head (request line plus headers) read; scrapers send a few hundred bytes.
pub const REQUEST_HEAD_MAX_BYTES: usize = 8 * 1024;
/// A client must send its whole request head within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one shard's snapshot.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once.
pub const CONNECTIONS_MAX: usize = 16;

const METRICS_PATH: &str = "/metrics";

/// What the endpoint needs from the broker, implemented by the shard that serves it: metrics
/// knows nothing of shards or their messages.
pub trait Scrape {
    /// `admin.auth.token`: when set, requests must carry `Authorization: Bearer <token>`.
    fn admin_auth_token(&self) -> Option<&str>;
    /// Ends the accept loop.
    fn shutdown(&self) -> &shards::Shutdown;
    /// Every shard's snapshot, in shard order (a shard that does not answer is left out).
    fn collect(&self) -> LocalBoxFuture<'_, Vec<ShardSnapshot>>;
    /// The API keys the broker serves (each gets its series even before its first request).
    fn served_api_keys(&self) -> Vec<i16>;
    /// More exposition text appended as is (whole metric families: the KRaft gauges).
    fn more_text(&self) -> String {
        String::new()
    }
}

/// Binds the admin address (port 0 picks a free one) and logs `admin listening=ADDR`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    tracing::info!("admin listening={bound}");
    Ok(listener)
}

/// Accepts admin connections until shutdown.
pub async fn serve<S: Scrape + 'static>(shard: Rc<S>, listener: TcpListener) {
    let open = Rc::new(Cell::new(0usize));
    let mut failures = shards::AcceptFailures::default();
    loop {
        let accept = Box::pin(listener.accept());
        let stop = Box::pin(shard.shutdown().wait());
        let (stream, peer) = match select(accept, stop).await {
            Either::Left((Ok(accepted), _)) => accepted,
            Either::Left((Err(e), _)) => {
                // EMFILE and friends: back off instead of spinning on the error.
                let (wait, log) = failures.failed(std::time::Instant::now());
                if let Some(unlogged) = log {
                    tracing::warn!(error = %e, unlogged, "admin accept failed (retrying with backoff)");
                }
                compio::time::sleep(wait).await;
                continue;
            }
            Either::Right(_) => return,
        };
        failures.accepted();
        if open.get() >= CONNECTIONS_MAX {
            tracing::debug!(%peer, "admin connection limit reached, closing");
            continue;
        }
        open.set(open.get() + 1);
        let (shard, open) = (shard.clone(), open.clone());
        compio::runtime::spawn(async move {
            if let Err(e) = serve_one(&shard, stream).await {
                tracing::debug!(%peer, error = %e, "admin request failed");
            }
            open.set(open.get().saturating_sub(1));
        })
        .detach();
    }
}

async fn serve_one<S: Scrape>(shard: &Rc<S>, stream: TcpStream) -> Result<(), MetricsError> {
    let head = match compio::time::timeout(REQUEST_TIMEOUT, read_head(&stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(MetricsError::RequestTooLarge { .. })) => {
            return respond(&stream, "431 Request Header Fields Too Large", "").await;
        }
        Ok(Err(MetricsError::BadRequest(why))) => {
            return respond(&stream, "400 Bad Request", why).await;
        }
        Ok(Err(e)) => return Err(e),
        Err(_elapsed) => return Err(MetricsError::RequestTimeout(REQUEST_TIMEOUT)),
    };
    if let Some(token) = shard.admin_auth_token() {
        if !bearer_matches(&head, token) {
            tracing::warn!(target: crate::security::session::AUDIT_TARGET, "admin request denied: missing or wrong bearer token");
            return respond(&stream, "401 Unauthorized", "").await;
        }
    }
    match route(&head) {
        Ok(()) => {
            let mut body = text::render(&shard.collect().await, &shard.served_api_keys());
            body.push_str(&shard.more_text());
            respond_with(&stream, "200 OK", text::CONTENT_TYPE, body).await
        }
        Err(status) => respond(&stream, status, "").await,
    }
}

/// Reads until the blank line ending the request head (a GET has no body).
async fn read_head(stream: &TcpStream) -> Result<Vec<u8>, MetricsError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = find_head_end(&buf) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() >= REQUEST_HEAD_MAX_BYTES {
            return Err(MetricsError::RequestTooLarge {
                max: REQUEST_HEAD_MAX_BYTES,
            });
        }
        // Never read past the limit: the spare capacity is at most what is still allowed.
        let room = REQUEST_HEAD_MAX_BYTES - buf.len();
        buf.reserve_exact(room.min(1024));
        let mut reader = stream;
        let BufResult(read, returned) = reader.append(buf).await;
        buf = returned;
        if read? == 0 {
            return Err(MetricsError::BadRequest("connection closed mid-request"));
        }
        buf.truncate(REQUEST_HEAD_MAX_BYTES);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// `Ok` for `GET /metrics` (a query string is ignored), else the status to answer.
fn route(head: &[u8]) -> Result<(), &'static str> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = head
        .get(..line_end)
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or("400 Bad Request")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("400 Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("400 Bad Request");
    }
    let path = target.split('?').next().unwrap_or(target);
    if method == "GET" && path == METRICS_PATH {
        Ok(())
    } else {
        Err("404 Not Found")
    }
}

/// Whether the head carries `Authorization: Bearer <token>` (`admin.auth.token`), compared
/// in constant time.
fn bearer_matches(head: &[u8], token: &str) -> bool {
    let Ok(text) = std::str::from_utf8(head) else {
        return false;
    };
    text.split("\r\n").skip(1).any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("authorization")
            && value.trim().strip_prefix("Bearer ").is_some_and(|given| {
                crate::security::scram::constant_time_eq(given.trim().as_bytes(), token.as_bytes())
            })
    })
}

async fn respond(stream: &TcpStream, status: &str, body: &str) -> Result<(), MetricsError> {
    let body = if body.is_empty() {
        format!("{status}\n")
    } else {
        format!("{body}\n")
    };
    respond_with(stream, status, "text/plain; charset=utf-8", body).await
}

async fn respond_with(
    stream: &TcpStream,
    status: &str,
    content_type: &str,
    body: String,
) -> Result<(), MetricsError> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body.as_bytes());
    let mut writer = stream;
    let BufResult(written, _) = writer.write_all(response).await;
    written?;
    let _peer_may_be_gone = writer.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_metrics_only() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x"), Ok(()));
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization: Bearer s3cret";
        assert!(bearer_matches(head, "s3cret"));
        assert!(!bearer_matches(head, "s3cre"));
        assert!(!bearer_matches(
            b"GET /metrics HTTP/1.1\r\nHost: x",
            "s3cret"
        ));
        assert!(!bearer_matches(
            b"GET /metrics HTTP/1.1\r\nX: Bearer s3cret",
            "s3cret"
        ));
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0"), Ok(()));
        assert_eq!(route(b"GET / HTTP/1.1"), Err("404 Not Found"));
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Err("404 Not Found"));
        assert_eq!(route(b"GET /metricsx HTTP/1.1"), Err("404 Not Found"));
        assert_eq!(route(b"GET /metrics"), Err("400 Bad Request"));
        assert_eq!(route(b"GET /metrics SPDY/3"), Err("400 Bad Request"));
        assert_eq!(route(b"\xff\xfe /metrics HTTP/1.1"), Err("400 Bad Request"));
        assert_eq!(route(b""), Err("400 Bad Request"));
    }

    #[test]
    fn head_end_is_the_first_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
