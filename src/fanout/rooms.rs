//! Socket.IO room names. Rooms are how the Socket.IO transport addresses an [`Audience`]
//! (and how the adapter reaches sockets on other replicas); nothing outside `fanout/`
//! spells a room name.
//!
//! * `user:{id}`: every socket of a user;
//! * `conversation:{id}`: the conversation's subscribers (and, since membership changes
//!   join and leave it, its members' live sockets);
//! * `session:{id}`: the sockets of one login session;
//! * `socket:{sid}`: one socket, so a broadcast can skip the socket that caused it, from
//!   any replica;
//! * `dialect:modern`: the sockets that do not speak the legacy event names; legacy twins
//!   skip it (see [`super::socketio`]).
//!
//! [`Audience`]: super::Audience

use uuid::Uuid;

const CONVERSATION_PREFIX: &str = "conversation:";

/// Sockets that get no legacy twins.
pub const MODERN_ROOM: &str = "dialect:modern";

pub fn user_room(user: Uuid) -> String {
    format!("user:{user}")
}

pub fn conversation_room(conversation: Uuid) -> String {
    format!("{CONVERSATION_PREFIX}{conversation}")
}

pub fn session_room(session: Uuid) -> String {
    format!("session:{session}")
}

pub fn socket_room(sid: &str) -> String {
    format!("socket:{sid}")
}

/// Whether `room` is a conversation's room (subscription limits count these).
pub fn is_conversation_room(room: &str) -> bool {
    room.starts_with(CONVERSATION_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_rooms_are_told_apart_from_the_others() {
        let id = Uuid::now_v7();
        assert!(is_conversation_room(&conversation_room(id)));
        for other in [user_room(id), session_room(id), socket_room("abc")] {
            assert!(!is_conversation_room(&other), "{other}");
        }
    }
}
