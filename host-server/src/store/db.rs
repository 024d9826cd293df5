//! [`Db`]: a store on a thread of its own, with group commit.

use core::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{QueueStore, Store, StoreError};

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut dyn Store) -> Completion + Send>;
type ReadJob = Box<dyn FnOnce(&mut dyn QueueStore) + Send>;

/// A store running on its own thread; async callers queue closures to it.
///
/// Every job waiting when a transaction begins goes into it, and jobs that queue while it
/// commits are taken together into the next one, so under load one `fsync` covers many
/// messages. (The queue is bounded by its callers: each connection has a bounded number of
/// requests in flight.) Dropping every `Db` clone (or calling
/// [`Db::shutdown`]) lets the thread finish the queued jobs, commit, and stop.
///
/// Reads that need only committed data ([`Db::read`]: what delivery sends) go to a second
/// thread with a connection of its own, when the backend offers one, so they never wait for
/// a commit of the writer.
#[derive(Clone)]
pub struct Db {
    jobs: smol::channel::Sender<Job>,
    reads: Option<smol::channel::Sender<ReadJob>>,
    threads: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

impl Db {
    /// Starts the storage thread.
    pub fn spawn<S: Store + 'static>(store: S) -> Result<Self, StoreError> {
        let mut threads = Vec::new();
        let reads = match store.open_reader()? {
            Some(mut reader) => {
                let (tx, rx) = smol::channel::unbounded::<ReadJob>();
                let thread = std::thread::Builder::new()
                    .name("sealroom-db-read".into())
                    .spawn(move || {
                        while let Ok(job) = rx.recv_blocking() {
                            job(&mut *reader);
                        }
                    })
                    .map_err(|e| StoreError::Open(format!("cannot start the read thread: {e}")))?;
                threads.push(thread);
                Some(tx)
            }
            None => None,
        };
        let (tx, rx) = smol::channel::unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("sealroom-db".into())
            .spawn(move || run_jobs(store, rx))
            .map_err(|e| StoreError::Open(format!("cannot start the storage thread: {e}")))?;
        threads.push(thread);
        Ok(Self {
            jobs: tx,
            reads,
            threads: Arc::new(std::sync::Mutex::new(threads)),
        })
    }

    /// Runs `f`, which must only read, on committed data: on the read thread if there is one
    /// (without waiting for the writer), else queued behind the writes like [`Db::call`].
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn QueueStore) -> Result<R, StoreError> + Send + 'static,
    {
        let Some(reads) = &self.reads else {
            return self.call(move |s: &mut dyn Store| f(s)).await;
        };
        let (done_tx, done_rx) = smol::channel::bounded::<Result<R, StoreError>>(1);
        let job: ReadJob = Box::new(move |s: &mut dyn QueueStore| {
            let _ = done_tx.try_send(f(s));
        });
        reads.send(job).await.map_err(|_| StoreError::Closed)?;
        done_rx.recv().await.map_err(|_| StoreError::Closed)?
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
        self.submit(f, move |out| {
            // The caller may have gone (connection closed); nothing to do then.
            let _ = done_tx.try_send(out);
        })?;
        done_rx
            .recv()
            .await
            .map_err(|_| E::from(StoreError::Closed))?
    }

    /// Queues `f` without waiting: `done` gets its result on the storage thread once the
    /// transaction holding it is durable (or has failed), in the order jobs were queued.
    ///
    /// This lets one connection have many requests in one commit; `done` must be quick (it
    /// runs between commits), so it only queues frames and wakes tasks.
    pub fn submit<R, E, F, D>(&self, f: F, done: D) -> Result<(), E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<R, E> + Send + 'static,
        D: FnOnce(Result<R, E>) + Send + 'static,
    {
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
                done(match committed {
                    Ok(()) => result,
                    Err(e) => Err(E::from(e)),
                });
            })
        });
        self.jobs
            .try_send(job)
            .map_err(|_| E::from(StoreError::Closed))
    }

    /// Stops taking jobs, lets the threads finish (and commit) what is queued, and waits.
    pub fn shutdown(&self) {
        self.jobs.close();
        if let Some(reads) = &self.reads {
            reads.close();
        }
        let handles = match self.threads.lock() {
            Ok(mut guard) => core::mem::take(&mut *guard),
            Err(poisoned) => core::mem::take(&mut *poisoned.into_inner()),
        };
        for handle in handles {
            let _ = handle.join();
        }
    }
}

fn run_jobs<S: Store>(mut store: S, rx: smol::channel::Receiver<Job>) {
    let mut completions: Vec<Completion> = Vec::new();
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
        // Everything waiting, including jobs queued while these ran.
        while let Ok(job) = rx.try_recv() {
            completions.push(job(&mut store));
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
