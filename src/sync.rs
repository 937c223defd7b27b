//! The one locking policy for the in-process maps (caches, registries, queues): a poisoned
//! mutex only means another task panicked mid-update of independent entries, so keep serving.

use std::sync::{Mutex, MutexGuard};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
