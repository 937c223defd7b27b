//! Push encryption off the runtime, at the lowest priority. Every push needs a fresh P-256
//! key pair and an ECDH (RFC 8291), about 0.3 ms of CPU: at a thousand offline recipients a
//! second that is a third of a core. Done on the runtime's threads it would compete with
//! message sends on equal terms; here it runs on one thread of its own under Linux's
//! `SCHED_IDLE` policy, so the kernel runs it only on CPU time nothing else wants: sends
//! first, pushes with what is left (they wait in the outbox meanwhile, durably).

use std::{sync::mpsc, thread};

use tokio::sync::oneshot;

use crate::storage::push::PushSubscriptionRecord;

type Job = (PushSubscriptionRecord, Vec<u8>, oneshot::Sender<anyhow::Result<Vec<u8>>>);

pub struct CryptoThread {
    jobs: mpsc::Sender<Job>,
}

impl CryptoThread {
    pub fn spawn() -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new().name("parley-push-crypto".into()).spawn(move || {
            lower_priority();
            while let Ok((subscription, payload, reply)) = queue.recv() {
                let _ = reply.send(super::webpush::encrypt(&subscription, &payload));
            }
        })?;
        Ok(Self { jobs })
    }

    /// The encrypted body of a push of `payload` to `subscription`.
    pub async fn encrypt(&self, subscription: PushSubscriptionRecord, payload: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((subscription, payload, reply))
            .map_err(|_| anyhow::anyhow!("the push crypto thread stopped"))?;
        answer.await.map_err(|_| anyhow::anyhow!("the push crypto thread dropped a job"))?
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler with pid 0 only changes the calling thread's policy, and
    // `param` is a valid sched_param for SCHED_IDLE (priority 0).
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        tracing::debug!("could not put the push crypto thread under SCHED_IDLE");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn lower_priority() {}
