//! Answers in Cloudflare's envelope: successes, paged successes and errors
//! with Cloudflare's codes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A Cloudflare-style failure: status, code and message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("sandbox statuses are valid"),
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: i64, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// Cloudflare's answer for an id that names nothing it can route to.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            400,
            7003,
            format!("Could not route to {path}, perhaps your object identifier is invalid?"),
        )
    }

    pub fn not_found(code: i64, what: &str) -> Self {
        Self::new(404, code, format!("{what} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        failure(self.status, &[(self.code, self.message.as_str())])
    }
}

/// `{"success": false, "errors": [...]}` with the given status.
pub(super) fn failure(status: StatusCode, errors: &[(i64, &str)]) -> Response {
    let errors: Vec<Value> = errors
        .iter()
        .map(|(code, message)| json!({"code": code, "message": message}))
        .collect();
    let body = json!({"success": false, "errors": errors, "messages": [], "result": null});
    (status, Json(body)).into_response()
}

/// `{"success": true, "result": …}`.
pub(super) fn ok(result: Value) -> Response {
    Json(json!({"success": true, "errors": [], "messages": [], "result": result})).into_response()
}

/// `{"success": true, "result": …, "result_info": …}`.
pub(super) fn ok_paged(result: Value, result_info: Value) -> Response {
    Json(json!({"success": true, "errors": [], "messages": [], "result": result, "result_info": result_info}))
        .into_response()
}

/// A Worker's code, as Cloudflare sends it: raw JavaScript, no envelope.
pub(super) fn javascript(content: String) -> Response {
    let mut response = content.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript"),
    );
    response
}

/// The outcome of a sandbox handler.
pub(super) type Reply = Result<Response, ApiError>;
