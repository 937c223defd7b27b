//! The fixture of the authorization matrix (tests/api/authz.rs, tests/realtime/authz.rs):
//! a group with an owner, an admin and a member, an outsider, a direct conversation whose
//! owner blocked the other side, an expired and a revoked access token, and a check that
//! no response shows a user's email to anyone else.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use super::{
    JWT_SECRET, TestApp,
    http::{Client, TestUser},
};

/// Who calls. `Owner` is the owner of the group (and of the direct conversation, and the
/// target of the user routes: "self" there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Anonymous,
    Expired,
    Revoked,
    NonParticipant,
    Blocked,
    Participant,
    Admin,
    Owner,
}

pub const ROLES: [Role; 8] = [
    Role::Anonymous,
    Role::Expired,
    Role::Revoked,
    Role::NonParticipant,
    Role::Blocked,
    Role::Participant,
    Role::Admin,
    Role::Owner,
];

/// What a row expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Success with this HTTP status (REST) or `{ok: true}` (sockets; the number is ignored).
    Ok(u16),
    /// An error: HTTP status (REST; ignored for sockets) and SPEC code.
    Err(u16, &'static str),
    /// The role does not apply to this route or event.
    Na,
}

pub const AUTH_FAILED: Expect = Expect::Err(401, "AUTH_FAILED");
pub const TOKEN_REVOKED: Expect = Expect::Err(401, "TOKEN_REVOKED");
pub const NOT_IN: Expect = Expect::Err(403, "NOT_IN_CONVERSATION");
pub const FORBIDDEN: Expect = Expect::Err(403, "FORBIDDEN");
pub const BLOCKED: Expect = Expect::Err(403, "BLOCKED");
pub const INVALID: Expect = Expect::Err(400, "VALIDATION_ERROR");
pub const NOT_FOUND: Expect = Expect::Err(404, "NOT_FOUND");
pub const NA: Expect = Expect::Na;

pub struct Fixture {
    pub owner: TestUser,
    pub admin: TestUser,
    pub member: TestUser,
    pub outsider: TestUser,
    /// Blocked by `owner`, with whom they share `direct`.
    pub blocked: TestUser,
    pub group: Uuid,
    pub direct: Uuid,
    /// Sent by the owner in the group.
    pub group_message: Uuid,
    /// Sent by the owner in the direct conversation (before the block).
    pub direct_message: Uuid,
    /// Sent by the blocked user in the direct conversation (before the block).
    pub blocked_message: Uuid,
    /// The member's, signed with the server's secret, `exp` an hour ago.
    pub expired_token: String,
    /// The member's, from a second login that was then signed out.
    pub revoked_token: String,
}

impl Fixture {
    pub async fn build(app: &TestApp) -> Self {
        let owner = app.register("Owner").await;
        let admin = app.register("Admin").await;
        let member = app.register("Member").await;
        let outsider = app.register("Outsider").await;
        let blocked = app.register("Blocked").await;
        let group = create_group(app, &owner, &[&admin, &member]).await;
        make_admin(app, group, admin.id).await;
        let direct = create_direct(&owner, &blocked).await;
        let group_message = send(&owner, group, "hello group").await;
        let direct_message = send(&owner, direct, "hello direct").await;
        let blocked_message = send(&blocked, direct, "hello back").await;
        owner.client.post_empty(&format!("/api/users/{}/block", blocked.id)).await.assert_status(204);
        let expired_token = mint_token(member.id, -3600);
        let revoked_token = second_session(app, &member).await;
        let out = app.client().with_token(&revoked_token);
        out.post_empty("/api/auth/logout").await.assert_status(204);
        Self {
            owner,
            admin,
            member,
            outsider,
            blocked,
            group,
            direct,
            group_message,
            direct_message,
            blocked_message,
            expired_token,
            revoked_token,
        }
    }

    /// The user acting as `role` (`None` for the token-less and bad-token roles).
    pub fn user(&self, role: Role) -> Option<&TestUser> {
        match role {
            Role::Anonymous | Role::Expired | Role::Revoked => None,
            Role::NonParticipant => Some(&self.outsider),
            Role::Blocked => Some(&self.blocked),
            Role::Participant => Some(&self.member),
            Role::Admin => Some(&self.admin),
            Role::Owner => Some(&self.owner),
        }
    }

    /// A REST client acting as `role`. The bad-token roles get a fresh cookie jar, so no
    /// refresh cookie can stand in for their token.
    pub fn client(&self, app: &TestApp, role: Role) -> Client {
        match role {
            Role::Anonymous => app.client(),
            Role::Expired => app.client().with_token(&self.expired_token),
            Role::Revoked => app.client().with_token(&self.revoked_token),
            other => self.user(other).expect("a user role").client.clone(),
        }
    }

    /// The conversation a role acts on: the direct one for the blocked user, else the group.
    pub fn conversation(&self, role: Role) -> Uuid {
        if role == Role::Blocked { self.direct } else { self.group }
    }

    /// A message of [`Self::conversation`] sent by the owner.
    pub fn message(&self, role: Role) -> Uuid {
        if role == Role::Blocked { self.direct_message } else { self.group_message }
    }

    pub fn everyone(&self) -> [&TestUser; 5] {
        [&self.owner, &self.admin, &self.member, &self.outsider, &self.blocked]
    }

    /// Why `body` shows the email of a fixture user other than `viewer`, if it does.
    pub fn foreign_email(&self, viewer: Option<Uuid>, body: &Value) -> Option<String> {
        let text = body.to_string().to_lowercase();
        self.everyone()
            .into_iter()
            .find(|user| Some(user.id) != viewer && text.contains(&user.email.to_lowercase()))
            .map(|user| format!("the email of {} leaked to {viewer:?}: {body}", user.email))
    }

    /// Panics (naming `what`) when `body` shows the email of a fixture user other than `viewer`.
    #[track_caller]
    pub fn assert_no_foreign_email(&self, viewer: Option<Uuid>, body: &Value, what: &str) {
        if let Some(leak) = self.foreign_email(viewer, body) {
            panic!("{what}: {leak}");
        }
    }
}

/// A group owned by `owner` with `members`.
pub async fn create_group(_app: &TestApp, owner: &TestUser, members: &[&TestUser]) -> Uuid {
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let reply =
        owner.client.post("/api/conversations", json!({"type": "group", "title": "Team", "participantIds": ids})).await;
    id_of(&reply.assert_status(201)["id"])
}

pub async fn create_direct(a: &TestUser, b: &TestUser) -> Uuid {
    let reply = a.client.post("/api/conversations", json!({"type": "direct", "participantIds": [b.id]})).await;
    assert!(matches!(reply.status.as_u16(), 200 | 201), "direct: {} {}", reply.status, reply.body);
    id_of(&reply.body["id"])
}

/// A message over REST; returns its id.
pub async fn send(user: &TestUser, conversation: Uuid, content: &str) -> Uuid {
    let reply = user
        .client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": Uuid::new_v4().to_string(), "content": content}),
        )
        .await;
    id_of(&reply.assert_status(201)["id"])
}

pub fn id_of(value: &Value) -> Uuid {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an id: {value}"))
}

/// No route makes an admin: the fixture promotes one in the database itself.
pub async fn make_admin(app: &TestApp, conversation: Uuid, user: Uuid) {
    let url = app.state.config.database_url.expose().clone();
    let sql = "UPDATE conversation_participants SET role = 'admin' WHERE conversation_id = $1 AND user_id = $2";
    let updated = if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect to PostgreSQL");
        sqlx::query(sql).bind(conversation).bind(user).execute(&mut conn).await.expect("promote").rows_affected()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open SQLite");
        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut conn).await.expect("busy timeout");
        sqlx::query(sql).bind(conversation).bind(user).execute(&mut conn).await.expect("promote").rows_affected()
    };
    assert_eq!(updated, 1, "admin not promoted");
}

/// The claims of an access token, for tokens the tests make themselves.
#[derive(serde::Serialize)]
pub struct Claims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    /// `user`'s claims in a session of its own.
    pub fn of(user: Uuid, iat: i64, exp: i64) -> Self {
        Self { sub: user.to_string(), sid: Uuid::new_v4().to_string(), jti: Uuid::new_v4().to_string(), iat, exp }
    }

    pub fn sign(&self, secret: &[u8], alg: jsonwebtoken::Algorithm) -> String {
        let header = jsonwebtoken::Header::new(alg);
        jsonwebtoken::encode(&header, self, &jsonwebtoken::EncodingKey::from_secret(secret)).expect("sign")
    }
}

/// An access token of `user` signed with the server's secret, expiring `exp_in_secs` from
/// now (negative: already expired, beyond the 5 s leeway).
pub fn mint_token(user: Uuid, exp_in_secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    Claims::of(user, now.min(now + exp_in_secs) - 60, now + exp_in_secs)
        .sign(JWT_SECRET.as_bytes(), jsonwebtoken::Algorithm::HS256)
}

/// A fresh login session of `user`: its access token.
pub async fn second_session(app: &TestApp, user: &TestUser) -> String {
    let reply = app.client().post("/api/auth/login", json!({"email": user.email, "password": user.password})).await;
    reply.assert_status(200)["accessToken"].as_str().expect("token").to_owned()
}

/// How long socket expectations wait.
pub const WAIT: Duration = Duration::from_secs(5);
