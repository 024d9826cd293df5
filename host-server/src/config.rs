//! Server configuration: every knob in one struct, with the production defaults.
//!
//! `main.rs` fills it from clap flags (each with an environment fallback); tests build it
//! directly and shrink what would make them slow (PBKDF2 rounds) or long (timeouts).

use core::net::SocketAddr;
use core::time::Duration;
use std::path::PathBuf;

use crate::auth::password::DEFAULT_ROUNDS;
use crate::auth::ratelimit::{Policy, Rate};

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder for the SQLite database and the generated certificate.
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://…` or `key=value` pairs) shared with other nodes,
    /// instead of the SQLite file in `data_dir`.
    pub database: Option<String>,
    /// PEM certificate chain; with `key`, replaces the self-signed certificate.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// Extra DNS names or IPs for the self-signed certificate (localhost is always in it).
    pub hostnames: Vec<String>,
    /// Folder of the web client's static files (index.html ...); a placeholder page if absent.
    pub web_root: PathBuf,
    /// PBKDF2 iterations for new password hashes.
    pub pbkdf2_rounds: u32,
    /// Connections served at once; more are refused with `BUSY`.
    pub max_connections: usize,
    /// Connections served at once from one source address (NAT-friendly, still bounded).
    pub max_connections_per_address: usize,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
    /// A connection silent this long is sent a ping; silent twice as long, it is closed.
    pub idle_timeout: Duration,
    /// Time allowed for one frame to be written before the peer is considered stuck.
    pub write_timeout: Duration,
    /// Frames queued per connection; a peer that lets it fill is disconnected.
    pub outbound_queue: usize,
    /// Seconds an undelivered message is kept (default 30 days).
    pub message_ttl: u64,
    /// Messages queued per recipient (and per room) before senders get `QUOTA_FULL`.
    pub recipient_quota: u64,
    /// Messages one sender may have queued for one recipient (so no single account can fill
    /// a recipient's queue for everyone else).
    pub sender_quota: u64,
    /// Messages (direct or room) one account may send.
    pub send_rate: Rate,
    /// Rooms one account may create.
    pub room_create_rate: Rate,
    /// Invitations one account may send.
    pub invite_rate: Rate,
    /// Invitations waiting for one account at most.
    pub max_pending_invitations: u64,
    /// Prekey bundles one account may fetch.
    pub bundle_fetch_rate: Rate,
    /// Device lists (`FetchDevices`) one account may fetch: a client asks before its first
    /// encryption to a contact on each connection, so this follows the send rate, not the
    /// bundle rate (a list hands out nothing).
    pub device_list_rate: Rate,
    /// Link messages one account may leave for devices being linked (`SendLink`): each is kept
    /// up to `MAX_BODY` for 10 minutes, so this bounds what an account can park on the server.
    pub link_rate: Rate,
    /// One-time prekeys of one account handed out; past it, bundles come without one (X3DH
    /// without a one-time prekey), so nobody can drain them.
    pub prekey_handout_rate: Rate,
    /// Time allowed from connecting to logging in (registering: to confirming the TOTP code).
    pub auth_deadline: Duration,
    /// Connections kept for logged-in users: beyond `max_connections` minus this (at most half
    /// the cap), a new connection must log in within `reserved_login_deadline` (a client
    /// resuming its session does so at once), so idle unauthenticated connections cannot
    /// take the last slots.
    pub reserved_for_authenticated: usize,
    /// The login deadline of a connection given one of the reserved slots.
    pub reserved_login_deadline: Duration,
    /// Connections from one IPv6 /56 (a site's prefix) at most, beside the per-/64 cap.
    pub max_connections_per_prefix56: usize,
    /// Password hashes waiting at most for unauthenticated requests (login, registration);
    /// beyond it the request is refused as busy rather than queued without bound.
    pub max_hash_queue: usize,
    /// One-time prekeys held per account at most.
    pub max_prekeys: u32,
    /// Below this many one-time prekeys the owner is sent `PrekeysLow`.
    pub prekeys_low: u32,
    /// Failed-login policy per account name.
    pub account_policy: Policy,
    /// Failed-login policy per source address.
    pub address_policy: Policy,
    /// Registrations per source address (each costs a PBKDF2 hash).
    pub registration_policy: Policy,
    /// How long shutdown waits for connections to finish.
    pub drain_timeout: Duration,
    /// How often expired messages are swept.
    pub sweep_interval: Duration,
    /// With several nodes: how often every local delivery task rereads its queue anyway, the
    /// net under wake-ups lost with a node that died between a commit and its announcement.
    pub resync_interval: Duration,
}

impl ServerConfig {
    /// The production defaults, with data in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir,
            database: None,
            cert: None,
            key: None,
            hostnames: Vec::new(),
            web_root: PathBuf::from("web-client/dist"),
            pbkdf2_rounds: DEFAULT_ROUNDS,
            max_connections: 10_000,
            max_connections_per_address: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            outbound_queue: 64,
            message_ttl: 30 * 24 * 3600,
            recipient_quota: 10_000,
            sender_quota: 1_000,
            send_rate: Rate {
                burst: 1_000,
                per_hour: 500 * 3600,
            },
            room_create_rate: Rate {
                burst: 10,
                per_hour: 20,
            },
            invite_rate: Rate {
                burst: 50,
                per_hour: 100,
            },
            max_pending_invitations: 100,
            bundle_fetch_rate: Rate {
                burst: 100,
                per_hour: 300,
            },
            device_list_rate: Rate {
                burst: 1_000,
                per_hour: 100 * 3600,
            },
            link_rate: Rate {
                burst: 10,
                per_hour: 60,
            },
            prekey_handout_rate: Rate {
                burst: 20,
                per_hour: 60,
            },
            auth_deadline: Duration::from_secs(5 * 60),
            reserved_for_authenticated: 1_000,
            reserved_login_deadline: Duration::from_secs(10),
            max_connections_per_prefix56: 1_024,
            max_hash_queue: 64,
            max_prekeys: 1_000,
            prekeys_low: 10,
            account_policy: Policy::ACCOUNT,
            address_policy: Policy::ADDRESS,
            registration_policy: Policy::REGISTRATION,
            drain_timeout: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(60),
            resync_interval: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_defaults_hash_passwords_at_600k_rounds() {
        assert_eq!(
            ServerConfig::new("/nonexistent".into()).pbkdf2_rounds,
            600_000
        );
    }
}
