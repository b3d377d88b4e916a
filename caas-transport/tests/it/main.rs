//! The gateway end to end: a real server on 127.0.0.1:0 over memory backends and a
//! manual clock, driven over HTTP and WebSocket.

mod api;
mod auth;
mod listener;
mod server;
mod ws;
