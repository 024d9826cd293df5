//! HTTPS for the browser: the web client's static files, and `/ws`, upgraded to a WebSocket
//! served by [`crate::transport::ws`] (one whole frame per binary message, into the same
//! connection handler as the native transport).
//!
//! Static responses carry a strict Content-Security-Policy (no inline script, same-origin
//! only), HSTS, `nosniff` and `no-referrer`. Nothing else is served: no API over HTTP.

use core::convert::Infallible;
use core::time::Duration;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use proto_core::limits::MAX_FRAME_WIRE;
use smol::io::{AsyncRead, AsyncWrite};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::Shared;
use crate::transport::Accepted;

/// The policy for every page: same-origin scripts, styles, and WebSocket; nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// Largest static file served.
const MAX_STATIC: u64 = 16 * 1024 * 1024;

const PLACEHOLDER: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Sealroom</title></head><body><h1>Sealroom server</h1><p>The server is running. The web \
client is not installed: build <code>web-client</code> into <code>web-client/dist</code> (or pass \
<code>--web-root</code>). Native clients connect to this same address.</p></body></html>\n";

type Body = Full<Bytes>;

/// Serves HTTP/1.1 on one TLS connection; a `/ws` upgrade continues as a WebSocket.
pub async fn serve_http<S>(shared: Arc<Shared>, stream: S, accepted: Accepted)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = accepted.peer;
    let (upgrade_tx, upgrade_rx) = smol::channel::bounded::<hyper::upgrade::OnUpgrade>(1);
    let web_root = shared.config.web_root.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let web_root = web_root.clone();
        let upgrade_tx = upgrade_tx.clone();
        async move { Ok::<_, Infallible>(route(req, &web_root, &upgrade_tx).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .serve_connection(FuturesIo::new(stream), service)
        .with_upgrades();
    // The HTTP phase is short-lived (a page and its assets, or an upgrade): bound it, so an
    // idle keep-alive connection cannot hold a slot forever.
    let lifetime = shared.config.idle_timeout.saturating_mul(2);
    let served = smol::future::or(async { Some(conn.await) }, async {
        smol::future::or(accepted.shutdown.wait(), async {
            smol::Timer::after(lifetime).await;
        })
        .await;
        None
    })
    .await;
    if let Some(Err(e)) = served {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
    let Ok(on_upgrade) = upgrade_rx.try_recv() else {
        return;
    };
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "WebSocket upgrade failed");
            return;
        }
    };
    let Ok(parts) = upgraded.downcast::<FuturesIo<S>>() else {
        tracing::error!("upgraded connection has an unexpected type");
        return;
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_WIRE))
        .max_frame_size(Some(MAX_FRAME_WIRE));
    let ws = WebSocketStream::from_partially_read(
        parts.io.into_inner(),
        parts.read_buf.to_vec(),
        Role::Server,
        Some(config),
    )
    .await;
    crate::transport::ws::serve_ws(shared, ws, accepted).await;
}

fn is_ws_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// A cross-site page may not open our WebSocket: the Origin's host must be ours.
fn origin_ok(req: &Request<Incoming>) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true; // not a browser
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

async fn route(
    mut req: Request<Incoming>,
    web_root: &Path,
    upgrade_tx: &smol::channel::Sender<hyper::upgrade::OnUpgrade>,
) -> Response<Body> {
    if req.uri().path() == "/ws" {
        if !is_ws_upgrade(&req) || req.method() != Method::GET {
            return plain(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade");
        }
        if !origin_ok(&req) {
            return plain(StatusCode::FORBIDDEN, "cross-origin WebSocket refused");
        }
        let version_ok = req
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
        let Some(key) = req
            .headers()
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|_| version_ok)
        else {
            return plain(
                StatusCode::BAD_REQUEST,
                "missing Sec-WebSocket-Key or version 13",
            );
        };
        let accept = derive_accept_key(key.as_bytes());
        if upgrade_tx.try_send(hyper::upgrade::on(&mut req)).is_err() {
            return plain(StatusCode::BAD_REQUEST, "one WebSocket per connection");
        }
        let mut resp = Response::new(Body::default());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        return resp;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET");
    }
    let Some(path) = static_path(web_root, req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let root_missing = !web_root.join("index.html").is_file();
    let is_index = path == web_root.join("index.html");
    let root = web_root.to_owned();
    let file = smol::unblock(move || read_static(&root, &path)).await;
    match file {
        Some((bytes, ctype)) => page(StatusCode::OK, ctype, Bytes::from(bytes)),
        None if root_missing && is_index => page(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(PLACEHOLDER.as_bytes()),
        ),
        None => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Maps a URL path to a file under `root`, refusing anything that could leave it.
fn static_path(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = url_path.trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_owned()
    };
    if rel.contains('\\') || rel.contains('%') || rel.contains('\0') {
        return None;
    }
    let rel = Path::new(&rel);
    for c in rel.components() {
        match c {
            Component::Normal(part) if !part.to_string_lossy().starts_with('.') => {}
            _ => return None,
        }
    }
    Some(root.join(rel))
}

/// Reads a static file under `root`; `None` if it is missing, too large, not a regular file, or
/// (through a symbolic link anywhere on its path) really outside `root`.
fn read_static(root: &Path, path: &Path) -> Option<(Vec<u8>, &'static str)> {
    let real = path.canonicalize().ok()?;
    if !real.starts_with(root.canonicalize().ok()?) {
        return None;
    }
    let path = real.as_path();
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_STATIC {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let ctype = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    Some((bytes, ctype))
}

fn page(status: StatusCode, ctype: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    page(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::{read_static, static_path};
    use std::path::Path;

    #[test]
    fn static_paths_stay_under_the_root() {
        let root = Path::new("/srv/web");
        assert_eq!(static_path(root, "/"), Some(root.join("index.html")));
        assert_eq!(
            static_path(root, "/js/app.js"),
            Some(root.join("js/app.js"))
        );
        assert_eq!(
            static_path(root, "/css/"),
            Some(root.join("css/index.html"))
        );
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/.git/config",
            "/%2e%2e/x",
            "/a\\b",
            "/./x",
        ] {
            assert_eq!(static_path(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("web");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("index.html"), "hello").unwrap();
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, "do not serve").unwrap();
        std::os::unix::fs::symlink(&secret, root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("index.html"), root.join("alias.html")).unwrap();
        let get = |url: &str| static_path(&root, url).and_then(|p| read_static(&root, &p));
        assert_eq!(get("/").map(|f| f.0), Some(b"hello".to_vec()));
        assert_eq!(get("/leak.txt"), None);
        assert_eq!(get("/up/secret.txt"), None);
        // A link that stays inside the root is fine.
        assert_eq!(get("/alias.html").map(|f| f.0), Some(b"hello".to_vec()));
    }
}
