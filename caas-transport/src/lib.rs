#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod client;
pub mod dispatch;
pub mod extract;
pub mod gateway;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod requests;
mod routes;
pub mod server;
pub mod ws;

pub use gateway::{AppState, GatewayConfig, WebhookVerifier, router};
pub use problem::ApiError;
pub use server::{ServeConfig, serve};
pub use ws::{WsConfig, WsHub};
