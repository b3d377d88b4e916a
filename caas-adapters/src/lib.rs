#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// The wire form shared by every bus on a network (each such feature is listed).
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "rabbitmq",
    feature = "kafka"
))]
pub mod event_codec;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "mongo")]
pub mod mongo;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "webhooks")]
pub mod webhooks;
