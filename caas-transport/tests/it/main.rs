//! The gateway end to end: a real server on 127.0.0.1:0 over memory backends and a
//! manual clock, driven over HTTP and WebSocket; and the protobuf schema check.

mod api;
mod auth;
mod listener;
mod proto_schema;
mod server;
mod ws;
