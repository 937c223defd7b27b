//! Argon2id password hashing, off the async runtime and with bounded concurrency: each hash
//! takes ~19 MiB and tens of ms of CPU, so an unbounded login storm would exhaust memory.
//!
//! glibc serves such a buffer with `mmap` at first, but then raises its threshold past it and
//! keeps later ones in per-thread heaps after they are freed: 1,000 sign-ups left 1.4 GB of
//! RSS. A fixed threshold (which turns the adjustment off) sends every buffer of 4 MiB or
//! more back to the system when freed: 19 MB of RSS after the same 1,000 sign-ups.

use std::sync::{Arc, LazyLock};

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

use crate::{domain::input::Password, error::AppError};

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

/// Verified against when the email is unknown, so that case takes as long as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default().hash_password(b"parley-timing-equaliser").map(|h| h.to_string()).unwrap_or_default()
});

impl PasswordHasher {
    pub fn new() -> Self {
        return_big_buffers_to_the_system();
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self { permits: Arc::new(Semaphore::new(parallel * 2)) }
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let password = password.expose().to_owned();
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| AppError::Internal(anyhow::anyhow!("argon2 hash: {e}")))
        })
        .await
    }

    /// `true` when `password` matches `hash`; with no hash, burns the same time and says no.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool, AppError> {
        let password = password.to_owned();
        let known = hash.is_some();
        self.run(move || {
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
            Ok(Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok() && known)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let _permit =
            self.permits.acquire().await.map_err(|e| AppError::Internal(anyhow::anyhow!("hasher closed: {e}")))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing task failed: {e}")))?
    }
}

fn return_big_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        const MMAP_THRESHOLD: libc::c_int = 4 << 20;
        // SAFETY: mallopt only changes the allocator's tuning; it is thread-safe in glibc.
        ONCE.call_once(|| unsafe {
            if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 0 {
                tracing::warn!("mallopt(M_MMAP_THRESHOLD) refused; freed password buffers may stay in RSS");
            }
        });
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}
