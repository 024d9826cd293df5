//! The login ledger every node shares: failed-login counts and known addresses in PostgreSQL
//! (tables from migration 0002), so limits hold whichever node a guesser reaches.

use core::net::IpAddr;
use std::sync::Mutex;

use postgres::Client;

use super::{connect, to_i64, to_u64};
use crate::auth::ledger::{Counter, KNOWN_PER_ACCOUNT, LedgerError, LoginLedger};
use crate::auth::ratelimit::{Policy, Rate, RetryAfter, WINDOW_SECS, verdict};
use crate::store::StoreError;

/// [`LoginLedger`] on a PostgreSQL session of its own (reopened when lost). Each call is one
/// or two statements in autocommit: counts are advisory, so they need no group commit.
pub struct PgLedger {
    params: String,
    client: Mutex<Option<Client>>,
}

impl core::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PgLedger").finish_non_exhaustive()
    }
}

fn ledger_error(e: impl core::fmt::Display) -> LedgerError {
    LedgerError(e.to_string())
}

impl PgLedger {
    /// A ledger on the database `params` names (its schema made by [`super::PgStore::open`]).
    pub fn open(params: &str) -> Result<Self, StoreError> {
        let client = connect(params)?;
        Ok(Self {
            params: params.to_owned(),
            client: Mutex::new(Some(client)),
        })
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error>,
    ) -> Result<R, LedgerError> {
        let mut guard = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.params).map_err(ledger_error)?);
        }
        let Some(client) = guard.as_mut() else {
            return Err(LedgerError("no session".into()));
        };
        f(client).map_err(ledger_error)
    }
}

impl LoginLedger for PgLedger {
    fn is_remote(&self) -> bool {
        true
    }

    fn check(
        &self,
        counter: Counter<'_>,
        policy: &Policy,
        now: u64,
    ) -> Result<Result<(), RetryAfter>, LedgerError> {
        let (kind, key) = counter.stored();
        let since = to_i64(now.saturating_sub(WINDOW_SECS));
        let row = self.with(|c| {
            c.query_one(
                "SELECT COUNT(*), MIN(at), MAX(at) FROM login_failures \
                 WHERE kind = $1 AND key = $2 AND at > $3",
                &[&kind, &key, &since],
            )
        })?;
        let n: i64 = row.try_get(0).map_err(ledger_error)?;
        if n == 0 {
            return Ok(Ok(()));
        }
        let oldest: Option<i64> = row.try_get(1).map_err(ledger_error)?;
        let last: Option<i64> = row.try_get(2).map_err(ledger_error)?;
        Ok(verdict(
            policy,
            usize::try_from(n).unwrap_or(usize::MAX),
            oldest.map_or(now, to_u64),
            last.map_or(0, to_u64),
            now,
        ))
    }

    fn fail(&self, counter: Counter<'_>, policy: &Policy, now: u64) -> Result<(), LedgerError> {
        let (kind, key) = counter.stored();
        let keep = i64::try_from(policy.max_per_hour).unwrap_or(i64::MAX);
        self.with(|c| {
            c.execute(
                "INSERT INTO login_failures (kind, key, at) VALUES ($1, $2, $3)",
                &[&kind, &key, &to_i64(now)],
            )?;
            // Never more than the cap: older entries add nothing (as in memory).
            c.execute(
                "DELETE FROM login_failures WHERE id IN (SELECT id FROM login_failures \
                 WHERE kind = $1 AND key = $2 ORDER BY at DESC, id DESC OFFSET $3)",
                &[&kind, &key, &keep],
            )?;
            Ok(())
        })
    }

    fn forgive(&self, counter: Counter<'_>) -> Result<(), LedgerError> {
        let (kind, key) = counter.stored();
        self.with(|c| {
            c.execute(
                "DELETE FROM login_failures WHERE id = (SELECT id FROM login_failures \
                 WHERE kind = $1 AND key = $2 ORDER BY at DESC, id DESC LIMIT 1)",
                &[&kind, &key],
            )?;
            Ok(())
        })
    }

    fn clear(&self, counter: Counter<'_>) -> Result<(), LedgerError> {
        let (kind, key) = counter.stored();
        self.with(|c| {
            c.execute(
                "DELETE FROM login_failures WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )?;
            Ok(())
        })
    }

    fn is_known(&self, username: &str, addr: IpAddr) -> Result<bool, LedgerError> {
        let addr = addr.to_string();
        self.with(|c| {
            c.query_one(
                "SELECT EXISTS (SELECT 1 FROM known_addresses WHERE username = $1 AND address = $2)",
                &[&username.as_bytes(), &addr],
            )?
            .try_get(0)
        })
    }

    fn add_known(&self, username: &str, addr: IpAddr) -> Result<(), LedgerError> {
        let addr = addr.to_string();
        let keep = i64::try_from(KNOWN_PER_ACCOUNT).unwrap_or(i64::MAX);
        self.with(|c| {
            c.execute(
                "INSERT INTO known_addresses (username, address) VALUES ($1, $2) \
                 ON CONFLICT (username, address) \
                 DO UPDATE SET seq = nextval('known_addresses_seq')",
                &[&username.as_bytes(), &addr],
            )?;
            c.execute(
                "DELETE FROM known_addresses WHERE username = $1 AND address NOT IN \
                 (SELECT address FROM known_addresses WHERE username = $1 \
                  ORDER BY seq DESC LIMIT $2)",
                &[&username.as_bytes(), &keep],
            )?;
            Ok(())
        })
    }

    fn take_handout(
        &self,
        owner: &str,
        rate: &Rate,
        now: u64,
    ) -> Result<Option<bool>, LedgerError> {
        let burst = f64::from(rate.burst);
        let per_sec = f64::from(rate.per_hour) / 3600.0;
        // One statement: refill since `at`, then take a token only if one is there. Nodes
        // taking at once queue on the row lock and each sees the other's take.
        let taken = self.with(|c| {
            c.query_opt(
                "WITH p AS (SELECT $2::DOUBLE PRECISION AS burst, $3::BIGINT AS now, \
                   $4::DOUBLE PRECISION AS per_sec) \
                 INSERT INTO handout_buckets AS b (owner, tokens, at) \
                 SELECT $1, p.burst - 1, p.now FROM p WHERE p.burst >= 1 \
                 ON CONFLICT (owner) DO UPDATE SET \
                   tokens = LEAST((SELECT burst FROM p), b.tokens \
                     + (SELECT per_sec FROM p) * GREATEST((SELECT now FROM p) - b.at, 0)) - 1, \
                   at = (SELECT now FROM p) \
                 WHERE LEAST((SELECT burst FROM p), b.tokens \
                   + (SELECT per_sec FROM p) * GREATEST((SELECT now FROM p) - b.at, 0)) >= 1 \
                 RETURNING b.tokens",
                &[&owner, &burst, &to_i64(now), &per_sec],
            )
        })?;
        Ok(Some(taken.is_some()))
    }
}
