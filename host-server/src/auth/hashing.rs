//! The password hashing queue: bounded per source address and in all, so a storm of logins
//! cannot queue hashes without limit or crowd one address's share out.

use core::net::IpAddr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Auth, lock, password};

/// Hashes one source address may have waiting or running at once.
pub const HASHES_PER_ADDRESS: usize = 2;

/// The password hashing queue is full (or this address already has its share in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Who is waiting for or running a password hash.
#[derive(Debug, Default)]
pub(super) struct HashQueue {
    waiting: usize,
    pub(super) max_waiting: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl HashQueue {
    pub(super) fn new(max_waiting: usize) -> Self {
        Self {
            max_waiting,
            ..Self::default()
        }
    }
}

/// A place in the hashing queue; leaving it (however: done, or the connection dropped while
/// waiting) gives the place back.
struct Turn {
    queue: Arc<Mutex<HashQueue>>,
    addr: IpAddr,
    waiting: bool,
    _permit: Option<smol::lock::SemaphoreGuardArc>,
}

impl Turn {
    fn enter(queue: &Arc<Mutex<HashQueue>>, addr: IpAddr) -> Result<Self, Busy> {
        let mut q = lock(queue);
        let mine = q.per_address.get(&addr).copied().unwrap_or(0);
        if mine >= HASHES_PER_ADDRESS || q.waiting >= q.max_waiting {
            return Err(Busy);
        }
        q.waiting += 1;
        *q.per_address.entry(addr).or_insert(0) += 1;
        Ok(Self {
            queue: queue.clone(),
            addr,
            waiting: true,
            _permit: None,
        })
    }

    fn started(&mut self, permit: smol::lock::SemaphoreGuardArc) {
        lock(&self.queue).waiting -= 1;
        self.waiting = false;
        self._permit = Some(permit);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut q = lock(&self.queue);
        if self.waiting {
            q.waiting -= 1;
        }
        if let Some(n) = q.per_address.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                q.per_address.remove(&self.addr);
            }
        }
    }
}

impl Auth {
    /// Hashes a new password on the blocking pool, in turn with other unauthenticated
    /// requests (see [`Auth::turn`]).
    pub async fn hash(
        &self,
        addr: IpAddr,
        password: String,
    ) -> Result<Result<String, getrandom::Error>, Busy> {
        let _turn = self.turn(addr).await?;
        let rounds = self.rounds;
        Ok(smol::unblock(move || password::hash_password(&password, rounds)).await)
    }

    /// Verifies a password against `phc`, or against the decoy when the account is unknown,
    /// so both cost one PBKDF2 run. An unknown account never verifies.
    pub async fn verify(
        &self,
        addr: IpAddr,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, Busy> {
        let _turn = self.turn(addr).await?;
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.as_ref().clone());
        let ok = smol::unblock(move || password::verify_password(&password, &phc)).await;
        Ok(known && ok.unwrap_or(false))
    }

    /// A turn at password hashing: at most one hash per core runs at once; at most
    /// [`HASHES_PER_ADDRESS`] wait or run for one source address, and at most `max_queue` wait
    /// in all. Past either bound the request is refused at once ([`Busy`]) instead of queued
    /// without limit, so a storm of logins from many addresses delays a real user's login by
    /// a bounded amount, and one address cannot hold more than its share of the queue.
    async fn turn(&self, addr: IpAddr) -> Result<Turn, Busy> {
        let mut turn = Turn::enter(&self.queue, addr)?;
        let permit = self.hashing.acquire_arc().await;
        turn.started(permit);
        Ok(turn)
    }
}
