//! The SQLite schema, applied in order; `meta.schema_version` records how far.

/// Each entry upgrades the schema by one version.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE incidents (
    id          TEXT PRIMARY KEY,
    agent       TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    workload    TEXT NOT NULL,
    revision    INTEGER,
    from_image  TEXT,
    row_id      TEXT,
    severity    TEXT,
    method      TEXT,
    trigger     TEXT NOT NULL,
    requested_by TEXT,
    reason      TEXT NOT NULL,
    decision    TEXT NOT NULL,
    state       TEXT NOT NULL,
    dry_run     INTEGER NOT NULL DEFAULT 0,
    vars        TEXT NOT NULL DEFAULT '{}',
    deploy_at   TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX incidents_agent ON incidents(agent, created_at);
CREATE INDEX incidents_state ON incidents(state);
CREATE TABLE transitions (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    seq         INTEGER NOT NULL,
    at          TEXT NOT NULL,
    from_state  TEXT,
    event       TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (incident_id, seq)
);
CREATE TABLE steps (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    step_index  INTEGER NOT NULL,
    workload    TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    detail      TEXT NOT NULL DEFAULT 'null',
    PRIMARY KEY (incident_id, step_index, workload)
);
CREATE TABLE backups (
    id          INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    object      TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    incident_id     TEXT NOT NULL,
    target_key      TEXT NOT NULL,
    target          TEXT NOT NULL,
    message         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE TABLE threads (
    incident_id TEXT NOT NULL,
    target_key  TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (incident_id, target_key)
);
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    reason  TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT 'null'
);
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT,
    agent       TEXT,
    labels      TEXT NOT NULL,
    annotations TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (fingerprint, status, starts_at)
);
CREATE INDEX alerts_agent ON alerts(agent, received_at);
CREATE TABLE pauses (
    scope     TEXT PRIMARY KEY,
    paused_by TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        TEXT NOT NULL
);
"#,
    // 2: the safety gate counts rollbacks started since a time (`rollbacks_since`) on every
    // decision; without this it scanned every transition ever recorded
    r#"
CREATE INDEX transitions_to_state ON transitions(to_state, at);
"#,
    // 3: the indexes per-request queries and retention need: an incident's notifications,
    // backups and audit entries, and the oldest rows of each table
    r#"
CREATE INDEX outbox_incident ON outbox(incident_id, state);
CREATE INDEX outbox_created ON outbox(created_at);
CREATE INDEX backups_incident ON backups(incident_id);
CREATE INDEX audit_target ON audit(target, id);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX alerts_received ON alerts(received_at);
CREATE INDEX incidents_updated ON incidents(state, updated_at);
"#,
    // 4: steps are keyed by method too: verification's recovery method has its own step 0
    // on a workload, which the main method's step 0 must not stand for. Rows written before
    // belong to the incident's own method.
    r#"
CREATE TABLE steps_by_method (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    method      TEXT NOT NULL,
    step_index  INTEGER NOT NULL,
    workload    TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    detail      TEXT NOT NULL DEFAULT 'null',
    PRIMARY KEY (incident_id, method, step_index, workload)
);
INSERT INTO steps_by_method
    (incident_id, method, step_index, workload, name, kind, state, started_at, finished_at, detail)
SELECT s.incident_id, COALESCE(i.method, ''), s.step_index, s.workload, s.name, s.kind, s.state,
       s.started_at, s.finished_at, s.detail
FROM steps AS s LEFT JOIN incidents AS i ON i.id = s.incident_id
ORDER BY s.rowid;
DROP TABLE steps;
ALTER TABLE steps_by_method RENAME TO steps;
"#,
    // 5: when a delivery attempt last started, written before the message leaves: a row
    // still pending with it set may have reached its target (a kill, a lost answer), so
    // the next attempt first asks the target whether it has it.
    r#"
ALTER TABLE outbox ADD COLUMN attempted_at TEXT;
"#,
];
