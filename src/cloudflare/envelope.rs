//! Cloudflare's response envelope (`success`, `errors`, `messages`,
//! `result`, `result_info`), unwrapped into a result or a typed error.
//! Tolerant where Cloudflare is inconsistent (R2 sends plain strings).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiMessage, CloudflareError, advice};

/// A successful call's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub result: Value,
    pub result_info: Option<Value>,
}

#[derive(Deserialize)]
struct Envelope {
    success: Option<bool>,
    #[serde(default)]
    errors: Vec<Item>,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    result_info: Option<Value>,
}

/// An error item as an object, or as a bare string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Full {
        #[serde(default)]
        code: i64,
        #[serde(default)]
        message: String,
    },
    Text(String),
    Other(Value),
}

impl From<Item> for ApiMessage {
    fn from(item: Item) -> Self {
        match item {
            Item::Full { code, message } => ApiMessage { code, message },
            Item::Text(message) => ApiMessage { code: 0, message },
            Item::Other(value) => ApiMessage {
                code: 0,
                message: value.to_string(),
            },
        }
    }
}

/// The longest stretch of an unreadable body quoted in an error.
const QUOTE: usize = 200;

/// Unwraps a JSON answer.
pub(super) fn unwrap_json(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<ApiResponse, CloudflareError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| CloudflareError::InvalidResponse {
            status,
            detail: format!("{e}; the body starts {:?}", quote(body)),
        })?;
    let ok_status = (200..300).contains(&status);
    if ok_status && envelope.success != Some(false) {
        return Ok(ApiResponse {
            status,
            result: envelope.result,
            result_info: envelope.result_info,
        });
    }
    let errors: Vec<ApiMessage> = envelope.errors.into_iter().map(ApiMessage::from).collect();
    let status = if ok_status { 400 } else { status };
    Err(CloudflareError::Api {
        status,
        advice: advice(status, &errors),
        errors,
        retry_after,
    })
}

/// Unwraps a GraphQL answer, `{"data": …, "errors": […]}`: the data is the
/// result; any error (Cloudflare answers them with status 200 and `data`
/// null: an unknown field, a time range too large, the quota spent) is
/// the call's error, its `extensions.code` kept in the message.
pub(super) fn unwrap_graphql(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<ApiResponse, CloudflareError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        data: Value,
        #[serde(default)]
        errors: Option<Vec<Value>>,
    }
    let answer: Answer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        // Not GraphQL: an error in the envelope (authentication), or junk.
        Err(_) => return unwrap_json(status, retry_after, body),
    };
    let errors: Vec<ApiMessage> = answer
        .errors
        .unwrap_or_default()
        .iter()
        .map(|error| {
            let text = error["message"].as_str().unwrap_or("an error").to_string();
            ApiMessage {
                code: 0,
                message: match error["extensions"]["code"].as_str() {
                    Some(code) => format!("{text} ({code})"),
                    None => text,
                },
            }
        })
        .collect();
    if (200..300).contains(&status) && errors.is_empty() {
        return Ok(ApiResponse {
            status,
            result: answer.data,
            result_info: None,
        });
    }
    let limited = errors
        .iter()
        .any(|e| e.message.contains("(rate_limited)") || e.message.contains("quota"));
    let status = match status {
        200..=299 if limited => 429,
        200..=299 => 400,
        other => other,
    };
    Err(CloudflareError::Api {
        status,
        advice: advice(status, &errors),
        errors,
        retry_after,
    })
}

/// Unwraps a raw-text answer (a Worker's code); errors still come as JSON.
pub(super) fn unwrap_text(
    status: u16,
    retry_after: Option<Duration>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<ApiResponse, CloudflareError> {
    if !(200..300).contains(&status) {
        return match unwrap_json(status, retry_after, body) {
            Err(e @ CloudflareError::Api { .. }) => Err(e),
            _ => Err(CloudflareError::Api {
                status,
                errors: vec![],
                advice: advice(status, &[]),
                retry_after,
            }),
        };
    }
    let content =
        String::from_utf8(body.to_vec()).map_err(|_| CloudflareError::InvalidResponse {
            status,
            detail: "the script is not UTF-8 text".into(),
        })?;
    Ok(ApiResponse {
        status,
        result: json!({ "content_type": content_type.unwrap_or("application/javascript"), "content": content }),
        result_info: None,
    })
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTE)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Reads `Retry-After` as delay-seconds (Cloudflare never sends a date).
pub(super) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_yields_result_and_info() {
        let body = br#"{"success":true,"errors":[],"messages":[],"result":[{"id":"a"}],"result_info":{"page":1}}"#;
        let ok = unwrap_json(200, None, body).expect("success");
        assert_eq!(ok.result, json!([{"id": "a"}]));
        assert_eq!(ok.result_info, Some(json!({"page": 1})));
    }

    #[test]
    fn failure_yields_codes_and_advice() {
        let body = br#"{"success":false,"errors":[{"code":81057,"message":"Record already exists."}],"messages":[],"result":null}"#;
        let err = unwrap_json(400, None, body).expect_err("failure");
        assert_eq!(err.codes(), vec![81057]);
        assert_eq!(err.status(), Some(400));
        let text = err.to_string();
        assert!(text.contains("update or patch it by id"), "{text}");
        assert!(!text.contains(".."), "one full stop: {text}");
        let other = br#"{"success":false,"errors":[{"code":9005,"message":"Bad ttl"}],"messages":[],"result":null}"#;
        let err = unwrap_json(400, None, other).expect_err("failure");
        assert!(err.to_string().contains("fix the named parameter"), "{err}");
    }

    #[test]
    fn tolerates_string_errors_and_missing_fields() {
        let err = unwrap_json(403, None, br#"{"success":false,"errors":["denied"]}"#)
            .expect_err("failure");
        assert!(err.to_string().contains("denied"));
    }

    #[test]
    fn html_is_an_unreadable_answer() {
        let err =
            unwrap_json(502, None, b"<html><body>Bad gateway</body></html>").expect_err("html");
        assert!(
            matches!(err, CloudflareError::InvalidResponse { status: 502, .. }),
            "{err:?}"
        );
        assert!(err.is_transient());
    }

    #[test]
    fn success_false_with_200_is_an_error() {
        let err = unwrap_json(
            200,
            None,
            br#"{"success":false,"errors":[{"code":1,"message":"x"}]}"#,
        );
        assert!(err.is_err());
    }
}
