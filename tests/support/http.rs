//! A small REST client for tests: JSON in, status + headers + JSON out, cookies kept.

use std::sync::Arc;

use reqwest::{
    Method, StatusCode,
    cookie::{CookieStore, Jar},
    header::HeaderMap,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::TestApp;

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
    pub token: Option<String>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The SPEC error code, or "" when the body is not an error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the SPEC error shape with `code`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        assert_eq!(self.code(), code, "unexpected error code; body: {}", self.body);
        assert!(self.body["error"]["message"].is_string(), "error without message: {}", self.body);
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        &self.body
    }
}

impl Client {
    pub fn new(base: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar.clone()).build().expect("reqwest client");
        Self { http, jar, base: base.to_owned(), token: None }
    }

    /// The value of cookie `name` as the jar would send it to `/api/auth` (httpOnly or not).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let url = format!("{}/api/auth/refresh", self.base).parse().ok()?;
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self { token: Some(token.to_owned()), ..self.clone() }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        let response = builder.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::POST, path).json(&body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(self.request(Method::POST, path)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::PATCH, path).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }
}

/// A registered user with a client holding their token and refresh cookie.
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub password: String,
    pub token: String,
    pub client: Client,
}

pub const PASSWORD: &str = "correct horse battery";

impl TestUser {
    /// Signs in again at `app` (a fresh access token, say after the clock moved past the old
    /// one's expiry).
    pub async fn sign_in_again(&self, app: &TestApp) -> TestUser {
        let client = app.client();
        let reply = client.post("/api/auth/login", json!({"email": self.email, "password": self.password})).await;
        let token = reply.assert_status(200)["accessToken"].as_str().expect("access token").to_owned();
        TestUser {
            id: self.id,
            email: self.email.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            client: client.with_token(&token),
            token,
        }
    }
}

impl TestApp {
    /// An anonymous client with its own cookie jar.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// Registers `name` (display name; the email is made unique) and signs in.
    pub async fn register(&self, name: &str) -> TestUser {
        let email = format!(
            "{}.{}@example.com",
            name.to_lowercase().replace(' ', "."),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let client = self.client();
        let reply = client
            .post("/api/auth/register", json!({ "email": email, "password": PASSWORD, "displayName": name }))
            .await;
        let body = reply.assert_status(201);
        let token = body["accessToken"].as_str().expect("access token").to_owned();
        TestUser {
            id: body["user"]["id"].as_str().and_then(|s| s.parse().ok()).expect("user id"),
            username: body["user"]["username"].as_str().expect("username").to_owned(),
            email,
            password: PASSWORD.to_owned(),
            client: client.with_token(&token),
            token,
        }
    }
}
