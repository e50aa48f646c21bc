//! The cheapest proxy that can stand where flaregate stands: the same
//! server and client crates (axum, reqwest), TCP_NODELAY, two tokio
//! workers, and nothing else: each request is forwarded as it came, with
//! its Authorization header, and the upstream's status and body are sent
//! back. No MCP, no policy, no audit log.
//!
//! loadgen runs it as its own process (`loadgen --passthrough URL`), so its
//! cost per call is the floor any gateway in front of the sandbox pays on
//! these cores: what flaregate costs above it is MCP, policy and audit.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header::AUTHORIZATION};
use axum::serve::ListenerExt;

/// Serves until killed; prints `PROXY: <base url>` once it listens.
pub async fn serve(upstream: String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = Router::new()
        .fallback(forward)
        .with_state((reqwest::Client::new(), upstream));
    println!("PROXY: http://{address}");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.expect("serve");
}

async fn forward(
    State((http, upstream)): State<(reqwest::Client, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http.request(method, format!("{upstream}{path}")).body(body);
    if let Some(auth) = headers.get(AUTHORIZATION) {
        request = request.header(AUTHORIZATION, auth);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            match answer.bytes().await {
                Ok(body) => (status, body),
                Err(_) => (StatusCode::BAD_GATEWAY, Bytes::new()),
            }
        }
        Err(_) => (StatusCode::BAD_GATEWAY, Bytes::new()),
    }
}
