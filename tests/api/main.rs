//! The REST API, end to end: the real server on an ephemeral port, reqwest as the client,
//! in embedded mode (SQLite, in-process state) and production mode (PostgreSQL + Redis).

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod authz;
mod conversations;
mod deployment;
mod edges;
mod extras;
mod groups;
mod keys;
mod openapi;
mod process;
mod push;
mod rooms;
mod uploads;
mod users;
