//! The HTTP client: sends a prepared request with the credential, through
//! the shared limiter, retrying what is safe to retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::multipart::{Form, Part};
use serde_json::{Map, Value};

use super::credential::Credential;
use super::envelope::{ApiResponse, parse_retry_after, unwrap_json, unwrap_text};
use super::error::CloudflareError;
use super::limiter::{Limiter, RateSpec};
use super::request::{Body, PreparedRequest, build};
use super::retry::RetryPolicy;
use crate::catalog::{Endpoint, Method, ResponseKind};

/// Cloudflare's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// How to reach Cloudflare.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub credential: Credential,
    pub rate_limit: RateSpec,
    pub retry: RetryPolicy,
    /// The whole-request timeout, per attempt.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, credential: Credential) -> Self {
        Self {
            base_url: base_url.into(),
            credential,
            rate_limit: RateSpec::default(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Who owns an API token: a user (verified at `/user/tokens/verify`) or
/// an account (at `/accounts/{id}/tokens/verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOwner {
    User,
    Account(String),
}

/// A Cloudflare API client. Cheap to clone; clones share the connection
/// pool and the rate limiter.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Arc<str>,
    auth: HeaderMap,
    limiter: Arc<Limiter>,
    /// The whole of each endpoint quota (GraphQL Analytics), by quota.
    quotas: Arc<std::sync::Mutex<std::collections::HashMap<crate::catalog::Quota, Arc<Limiter>>>>,
    retry: RetryPolicy,
    timeout: Duration,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, CloudflareError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("flaregate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudflareError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').into(),
            auth: config.credential.headers()?,
            limiter: Arc::new(Limiter::new(config.rate_limit)),
            quotas: Arc::default(),
            retry: config.retry,
            timeout: config.timeout,
        })
    }

    /// flaregate's Cloudflare budget in this process: its rate and the
    /// requests free now (none when unlimited).
    pub fn budget(&self) -> (RateSpec, Option<u32>) {
        (self.limiter.spec(), self.limiter.available())
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Calls `endpoint` with `args`: builds the request (refusing unsafe
    /// values before any I/O), sends it, unwraps the envelope.
    pub async fn call(
        &self,
        endpoint: &Endpoint,
        args: &Map<String, Value>,
    ) -> Result<ApiResponse, CloudflareError> {
        let request = build(endpoint, args)?;
        self.send(&request, endpoint.response).await
    }

    /// Checks the credential: a user's token at `/user/tokens/verify`;
    /// where that refuses it, an account-owned token at
    /// `/accounts/{id}/tokens/verify` of each account it can list. Returns
    /// the token's status ("active") and who owns it.
    pub async fn verify_token(&self) -> Result<(String, TokenOwner), CloudflareError> {
        let user_error = match self.verify_at("/user/tokens/verify".into()).await {
            Ok(status) => return Ok((status, TokenOwner::User)),
            Err(error) if matches!(error.status(), Some(400 | 401 | 403)) => error,
            Err(error) => return Err(error),
        };
        let Ok(accounts) = self.account_ids().await else {
            return Err(user_error);
        };
        for id in accounts {
            if let Ok(status) = self
                .verify_at(format!("/accounts/{id}/tokens/verify"))
                .await
            {
                return Ok((status, TokenOwner::Account(id)));
            }
        }
        Err(user_error)
    }

    async fn verify_at(&self, path: String) -> Result<String, CloudflareError> {
        let request = PreparedRequest {
            method: Method::Get,
            path,
            query: Vec::new(),
            body: Body::None,
            quota: None,
        };
        let answer = self.send(&request, ResponseKind::Json).await?;
        Ok(answer.result["status"]
            .as_str()
            .unwrap_or("unknown")
            .to_string())
    }

    /// The ids of the accounts the token can list (first page), those
    /// that read as ids only: they go into a path.
    async fn account_ids(&self) -> Result<Vec<String>, CloudflareError> {
        let request = PreparedRequest {
            method: Method::Get,
            path: "/accounts".into(),
            query: vec![("per_page".into(), "50".into())],
            body: Body::None,
            quota: None,
        };
        let answer = self.send(&request, ResponseKind::Json).await?;
        Ok(answer
            .result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["id"].as_str())
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string)
            .collect())
    }

    /// Sends with retries as the policy allows.
    pub async fn send(
        &self,
        request: &PreparedRequest,
        kind: ResponseKind,
    ) -> Result<ApiResponse, CloudflareError> {
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(request, kind).await;
            let error = match outcome {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            match self.retry.delay_after(request.method, attempt, &error) {
                Some(pause) => {
                    tracing::warn!(
                        method = %request.method, path = %request.path, attempt,
                        pause_ms = pause.as_millis() as u64, %error,
                        "Cloudflare call failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                None if attempt > 1 => {
                    return Err(CloudflareError::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(error),
                    });
                }
                None => return Err(error),
            }
        }
    }

    async fn send_once(
        &self,
        request: &PreparedRequest,
        kind: ResponseKind,
    ) -> Result<ApiResponse, CloudflareError> {
        let own;
        let limiter = match request.quota {
            Some(quota) => {
                own = self.quota_limiter(quota);
                &own
            }
            None => &self.limiter,
        };
        if let Err(wait) = limiter.try_acquire() {
            return Err(CloudflareError::RateLimited {
                limit: limiter.spec().to_string(),
                retry_after: wait,
            });
        }
        let started = Instant::now();
        let url = format!("{}{}", self.base_url, request.path);
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.http.request(method, &url).headers(self.auth.clone());
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(fields) => builder.multipart(fields_form(fields)),
            Body::Module {
                metadata,
                module,
                layout,
            } => builder.multipart(module_form(metadata, module, layout)),
        };
        let response = builder.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let retry_after = parse_retry_after(headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()));
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        tracing::debug!(
            method = %request.method, path = %request.path, status,
            elapsed_ms = started.elapsed().as_millis() as u64, "Cloudflare answered"
        );
        match kind {
            ResponseKind::Json => unwrap_json(status, retry_after, &body),
            ResponseKind::Text => unwrap_text(status, retry_after, content_type.as_deref(), &body),
            ResponseKind::Graphql => super::envelope::unwrap_graphql(status, retry_after, &body),
        }
    }

    /// The limiter of an endpoint's own quota, made at its first request.
    fn quota_limiter(&self, quota: crate::catalog::Quota) -> Arc<Limiter> {
        let mut quotas = self
            .quotas
            .lock()
            .expect("quota lock is never poisoned: no panics inside");
        quotas
            .entry(quota)
            .or_insert_with(|| {
                Arc::new(Limiter::new(RateSpec::Limit {
                    requests: quota.requests,
                    per: Duration::from_secs(quota.per_seconds),
                }))
            })
            .clone()
    }

    fn transport_error(&self, error: reqwest::Error) -> CloudflareError {
        if error.is_timeout() {
            CloudflareError::Timeout(self.timeout)
        } else {
            // Without the URL: it is ours, not news, and keeps messages short.
            CloudflareError::Transport(error.without_url().to_string())
        }
    }
}

/// The multipart form of an upload: `metadata` then the module, named and
/// typed as the catalog says.
fn fields_form(fields: &[super::request::FormField]) -> Form {
    fields.iter().fold(Form::new(), |form, field| {
        let part = Part::text(field.text.clone());
        let part = if field.file {
            part.file_name(field.name.clone())
        } else {
            part
        };
        form.part(field.name.clone(), part)
    })
}

fn module_form(metadata: &Value, module: &str, layout: &crate::catalog::Multipart) -> Form {
    let metadata = Part::text(metadata.to_string())
        .file_name("metadata.json")
        .mime_str("application/json")
        .expect("a literal MIME type parses");
    let part = Part::text(module.to_string()).file_name(layout.module_file.clone());
    // A type the catalog got wrong is sent as the loader left it: untyped.
    let part = match part.mime_str(&layout.module_type) {
        Ok(typed) => typed,
        Err(_) => Part::text(module.to_string()).file_name(layout.module_file.clone()),
    };
    Form::new()
        .part("metadata", metadata)
        .part(layout.module_file.clone(), part)
}
