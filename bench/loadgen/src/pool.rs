//! Bounded parallelism: many tasks, at most `limit` of them running at a time.

use std::{future::Future, sync::Arc};

use anyhow::anyhow;
use tokio::sync::Semaphore;

/// Runs `task` on every item, each on its own tokio task (so both cores work), at most
/// `limit` at once. Results come back in the order of `items`. A task's clock starts when it
/// gets its turn: the futures are lazy, so nothing runs before the permit is taken.
pub async fn run_bounded<I, T, F, Fut>(items: Vec<I>, limit: usize, task: F) -> Vec<anyhow::Result<T>>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| {
            let permits = permits.clone();
            let work = task(item);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await?;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap_or_else(|err| Err(anyhow!("task failed: {err}"))));
    }
    results
}
