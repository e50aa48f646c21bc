//! The Cloudflare REST client: the only module that speaks HTTP to
//! Cloudflare. Requests are built from catalog entries; answers are
//! unwrapped from Cloudflare's envelope into results or typed errors.

mod client;
mod credential;
mod envelope;
mod error;
mod limiter;
mod pagination;
mod request;
mod retry;

pub use client::{Client, ClientConfig, DEFAULT_BASE_URL, TokenOwner};
pub use credential::Credential;
pub use envelope::ApiResponse;
pub use error::{ApiMessage, CloudflareError};
pub use limiter::{Limiter, RateSpec};
pub use pagination::{AllPages, PageWalk, next_cursor};
pub use request::{Body, PreparedRequest, build};
pub use retry::RetryPolicy;
