//! Services used by both REST handlers and socket handlers, plus the validated input types
//! and wire views they speak. Dependencies point one way: http/realtime → domain →
//! storage, shared_state.

pub mod access;
pub mod auth;
pub mod conversations;
pub mod cursor;
pub mod delivery;
pub mod input;
pub mod message_input;
pub mod message_writer;
pub mod messages;
pub mod password;
pub mod presence;
pub mod reads;
pub mod time;
pub mod tokens;
pub mod typing;
pub mod unread;
pub mod users;
pub mod views;
