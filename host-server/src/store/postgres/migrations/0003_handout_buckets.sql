-- Schema version 3: the pace at which an account's one-time prekeys are handed out, shared by
-- every node (a token bucket per owner), so fetching bundles through several nodes cannot drain
-- them faster than one node allows. tokens refill at the configured rate up to the burst; `at`
-- is when they were last counted (Unix seconds).
CREATE TABLE handout_buckets (
    owner  TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at     BIGINT NOT NULL
);
