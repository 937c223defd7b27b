//! One module per scenario of issue 7; each has its `Args` and `run`.

pub mod chat;
pub mod fanout;
pub mod idle;
pub mod rest;
pub mod search;
pub mod soak;
pub mod storm;
pub mod uploads;
