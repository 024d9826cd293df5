-- Schema version 2: what a single node keeps in memory for failed logins, shared by every
-- node of a cluster (auth::LoginLedger). kind: 0 (account, address) pair, 1 account from
-- addresses it never used, 2 address, 3 registrations per address. Failures older than an
-- hour no longer count and are swept.
CREATE TABLE login_failures (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind SMALLINT NOT NULL,
    key  BYTEA NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (kind, key, at);

-- Addresses (an IPv4 address or an IPv6 /64) each account logged in from; newest seq last.
-- Keys and names are bytes: a login attempt's name is whatever the client sent (NUL included).
CREATE SEQUENCE known_addresses_seq;
CREATE TABLE known_addresses (
    username BYTEA NOT NULL,
    address  TEXT NOT NULL,
    seq      BIGINT NOT NULL DEFAULT nextval('known_addresses_seq'),
    PRIMARY KEY (username, address)
);
