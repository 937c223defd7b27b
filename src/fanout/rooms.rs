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
const SOCKET_PREFIX: &str = "socket:";
/// The prefixes of the rooms Parley routes events through (all but free-form rooms).
const PARLEY_PREFIXES: [&str; 5] = ["user:", CONVERSATION_PREFIX, "session:", SOCKET_PREFIX, "dialect:"];

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
    format!("{SOCKET_PREFIX}{sid}")
}

/// The socket id of a socket's own room (`None` for any other room).
pub fn own_room_socket(room: &str) -> Option<&str> {
    room.strip_prefix(SOCKET_PREFIX)
}

/// Whether `room` is one Parley routes events through (its membership is authorization:
/// the admin UI may not put a socket into one).
pub fn is_parley_room(room: &str) -> bool {
    PARLEY_PREFIXES.iter().any(|prefix| room.starts_with(prefix))
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
        for room in [user_room(id), session_room(id), socket_room("abc"), conversation_room(id), MODERN_ROOM.into()] {
            assert!(is_parley_room(&room), "{room}");
        }
        assert!(!is_parley_room("lobby") && !is_parley_room("abc"));
        assert_eq!(own_room_socket(&socket_room("abc")), Some("abc"));
        assert_eq!(own_room_socket(&user_room(id)), None);
    }
}
