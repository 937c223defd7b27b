//! Parley: a Socket.IO v4 chat server. See README.md for a tour of the code.

pub mod admin;
pub mod app;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod domain;
pub mod error;
pub mod fanout;
pub mod http;
pub mod net_guard;
pub mod outbox;
pub mod rawws;
pub mod realtime;
pub mod shared_state;
pub mod state;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod transport;
