//! The REST calls the scenarios need to set themselves up (SPEC §2), nothing more.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The password of every generated user.
pub const PASSWORD: &str = "load-test-password";

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `POST /api/auth/register` → (user id, access token).
    pub async fn register(&self, email: &str, name: &str) -> anyhow::Result<(String, String)> {
        let body = json!({"email": email, "password": PASSWORD, "displayName": name});
        let reply = self.call(Method::POST, "/api/auth/register", None, Some(body)).await?;
        Ok((string(&reply["user"]["id"], "user.id")?, string(&reply["accessToken"], "accessToken")?))
    }

    /// `POST /api/auth/login` → a fresh access token.
    pub async fn login(&self, email: &str) -> anyhow::Result<String> {
        let body = json!({"email": email, "password": PASSWORD});
        let reply = self.call(Method::POST, "/api/auth/login", None, Some(body)).await?;
        string(&reply["accessToken"], "accessToken")
    }

    /// Whether the server accepts `token` (`GET /api/auth/me`) as the user `id`.
    pub async fn token_works(&self, token: &str, id: &str) -> anyhow::Result<bool> {
        let reply = self.http.get(format!("{}/api/auth/me", self.base)).bearer_auth(token).send().await?;
        if reply.status() == StatusCode::UNAUTHORIZED || reply.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        let me: Value = reply.error_for_status()?.json().await?;
        Ok(me["id"].as_str() == Some(id))
    }

    /// `POST /api/conversations` of a direct conversation with `peer` → its id.
    pub async fn create_direct(&self, token: &str, peer: &str) -> anyhow::Result<String> {
        let body = json!({"type": "direct", "participantIds": [peer]});
        let reply = self.call(Method::POST, "/api/conversations", Some(token), Some(body)).await?;
        string(&reply["id"], "conversation id")
    }

    /// `POST /api/conversations` of a group with `others` (at most 999) → its id.
    pub async fn create_group(&self, token: &str, title: &str, others: &[String]) -> anyhow::Result<String> {
        let body = json!({"type": "group", "title": title, "participantIds": others});
        let reply = self.call(Method::POST, "/api/conversations", Some(token), Some(body)).await?;
        string(&reply["id"], "conversation id")
    }

    /// `POST /api/conversations/:id/messages`.
    pub async fn post_message(
        &self,
        token: &str,
        conversation: &str,
        client_id: &str,
        content: &str,
    ) -> anyhow::Result<()> {
        let body = json!({"clientMessageId": client_id, "content": content});
        let path = format!("/api/conversations/{conversation}/messages");
        self.call(Method::POST, &path, Some(token), Some(body)).await.map(drop)
    }

    /// One JSON call; a non-2xx status becomes an error that quotes the server's answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = reply.status();
        let text = reply.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }
}

fn string(value: &Value, what: &str) -> anyhow::Result<String> {
    value.as_str().map(str::to_owned).with_context(|| format!("no {what} in the answer"))
}
