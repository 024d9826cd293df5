//! The PostgreSQL side of the harness: the test cluster (`SEALROOM_TEST_DATABASE`, set by
//! `ci/with-postgres`), a fresh database per test server, and visible skips without one.
//! Without the `postgres` feature there is never a test database: the suite runs on SQLite, and
//! the tests that only mean something with PostgreSQL are not built.

use std::io::Write as _;

#[cfg(feature = "postgres")]
use super::random32;

/// The PostgreSQL cluster the suite runs against, if any (`key=value` parameters).
pub fn postgres_cluster() -> Option<String> {
    std::env::var("SEALROOM_TEST_DATABASE")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// For a test that only means something with PostgreSQL: the cluster, or `None` after saying
/// the test is skipped. In CI (`SEALROOM_REQUIRE_POSTGRES` set) a missing cluster fails instead.
pub fn require_postgres(test: &str) -> Option<String> {
    let cluster = postgres_cluster();
    if cluster.is_none() {
        assert!(
            std::env::var_os("SEALROOM_REQUIRE_POSTGRES").is_none(),
            "{test}: SEALROOM_REQUIRE_POSTGRES is set but SEALROOM_TEST_DATABASE is not; \
             run it under ci/with-postgres"
        );
        // Straight to stderr, past the test harness's capture: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: needs PostgreSQL; run `ci/with-postgres cargo test -p host-server`"
        );
    }
    cluster
}

/// A fresh database on the test cluster, dropped with this value.
pub struct TestDatabase {
    admin: String,
    name: String,
    /// Connection parameters for the server.
    pub params: String,
}

impl TestDatabase {
    /// A new empty database, if the suite runs against PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn create() -> Option<Self> {
        let admin = postgres_cluster()?;
        let name = format!("t_{}", hex::encode(&random32()[..8]));
        let params = host_server::store::create_database(&admin, &name)
            .unwrap_or_else(|e| panic!("cannot create a test database on {admin}: {e}"));
        Some(Self {
            admin,
            name,
            params,
        })
    }

    /// None: this build has no PostgreSQL support. A test cluster set anyway is a mistake
    /// (the suite would silently run on SQLite), so it fails the test.
    #[cfg(not(feature = "postgres"))]
    pub fn create() -> Option<Self> {
        assert!(
            postgres_cluster().is_none(),
            "SEALROOM_TEST_DATABASE is set, but this build has no PostgreSQL support; \
             rebuild with the `postgres` feature"
        );
        None
    }

    /// A new session on this database, for tests that look at what was stored.
    #[cfg(feature = "postgres")]
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.params, postgres::NoTls).unwrap()
    }
}

#[cfg(feature = "postgres")]
impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = host_server::store::drop_database(&self.admin, &self.name) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
