//! [`Db`]: a store on a thread of its own, with group commit.

use core::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Store, StoreError};

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut dyn Store) -> Completion + Send>;

/// Most jobs in one transaction: bounds the latency of the first job in a busy batch.
const MAX_BATCH: usize = 256;

/// A store running on its own thread; async callers queue closures to it.
///
/// Jobs that queue while a transaction commits are taken together into the next one, so
/// under load one `fsync` covers many messages. Dropping every `Db` clone (or calling
/// [`Db::shutdown`]) lets the thread finish the queued jobs, commit, and stop.
#[derive(Clone)]
pub struct Db {
    jobs: smol::channel::Sender<Job>,
    thread: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

impl Db {
    /// Starts the storage thread.
    pub fn spawn<S: Store + 'static>(store: S) -> Result<Self, StoreError> {
        let (tx, rx) = smol::channel::unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("sealroom-db".into())
            .spawn(move || run_jobs(store, rx))
            .map_err(|e| StoreError::Open(format!("cannot start the storage thread: {e}")))?;
        Ok(Self {
            jobs: tx,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Runs `f` atomically on the store and returns its result once it is durable.
    ///
    /// `f`'s error type is the caller's (a refusal, say): an `Err` undoes the job's writes and
    /// comes back as it was; a storage failure (the job could not start, or its batch did not
    /// commit) comes back converted from [`StoreError`].
    pub async fn call<R, E, F>(&self, f: F) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<R, E> + Send + 'static,
    {
        let (done_tx, done_rx) = smol::channel::bounded::<Result<R, E>>(1);
        let job: Job = Box::new(move |store: &mut dyn Store| {
            let result = match store.begin_job() {
                Ok(()) => {
                    let r = f(store);
                    match store.end_job(r.is_ok()) {
                        Ok(()) => r,
                        Err(e) => Err(E::from(e)),
                    }
                }
                Err(e) => Err(E::from(e)),
            };
            Box::new(move |committed: Result<(), StoreError>| {
                let out = match committed {
                    Ok(()) => result,
                    Err(e) => Err(E::from(e)),
                };
                // The caller may have gone (connection closed); nothing to do then.
                let _ = done_tx.try_send(out);
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| E::from(StoreError::Closed))?;
        done_rx
            .recv()
            .await
            .map_err(|_| E::from(StoreError::Closed))?
    }

    /// Stops taking jobs, lets the thread commit what is queued, and waits for it.
    pub fn shutdown(&self) {
        self.jobs.close();
        let handle = match self.thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn run_jobs<S: Store>(mut store: S, rx: smol::channel::Receiver<Job>) {
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    let (mut commits, mut jobs) = (0u64, 0u64);
    // recv_blocking fails only once the channel is closed *and* empty: queued jobs still run.
    while let Ok(first) = rx.recv_blocking() {
        if let Err(e) = store.begin_batch() {
            // Run the job on its own: its savepoint is then its own transaction, committed
            // (or not) by `end_job`, so its own result is the truth.
            tracing::error!(error = %e, "cannot begin a batch transaction");
            let c = first(&mut store);
            c(Ok(()));
            continue;
        }
        completions.push(first(&mut store));
        while completions.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => completions.push(job(&mut store)),
                Err(_) => break,
            }
        }
        commits += 1;
        jobs += completions.len() as u64;
        let outcome = store.commit_batch();
        match outcome {
            Ok(()) => {
                for c in completions.drain(..) {
                    c(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = completions.len(), "commit failed");
                store.rollback_batch();
                let text = e.to_string();
                for c in completions.drain(..) {
                    c(Err(StoreError::Commit(text.clone())));
                }
            }
        }
    }
    tracing::info!(
        commits,
        requests = jobs,
        per_commit = format!("{:.1}", jobs as f64 / commits.max(1) as f64),
        "storage thread stopped"
    );
}
