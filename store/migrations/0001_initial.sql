-- 0001: the seed's tables (§6.1; JSONB -> JSON) plus node runs, versions, cache, secrets.
CREATE TABLE users (
    id              VARCHAR(36) PRIMARY KEY,
    email           VARCHAR(255) UNIQUE NOT NULL,
    username        VARCHAR(50) UNIQUE NOT NULL,
    password_hash   VARCHAR(255),
    display_name    VARCHAR(100),
    avatar_url      VARCHAR(500),
    bio             TEXT,
    status          VARCHAR(20) DEFAULT 'active',
    email_verified  BOOLEAN DEFAULT FALSE,
    plan            VARCHAR(20) DEFAULT 'free',
    plan_expires_at TIMESTAMPTZ,
    workflow_count  INTEGER DEFAULT 0,
    agent_count     INTEGER DEFAULT 0,
    settings        JSON DEFAULT '{}',
    created_at      TIMESTAMPTZ DEFAULT NOW(),
    updated_at      TIMESTAMPTZ DEFAULT NOW(),
    last_login_at   TIMESTAMPTZ
);

CREATE TABLE workflows (
    id              VARCHAR(36) PRIMARY KEY,
    user_id         VARCHAR(36) NOT NULL REFERENCES users(id),
    name            VARCHAR(200) NOT NULL,
    description     TEXT,
    icon            VARCHAR(50) DEFAULT 'workflow',
    definition      JSON NOT NULL,
    variables       JSON DEFAULT '{}',
    status          VARCHAR(20) DEFAULT 'draft',
    visibility      VARCHAR(20) DEFAULT 'private',
    version         INTEGER DEFAULT 1,
    run_count       INTEGER DEFAULT 0,
    folder_id       VARCHAR(36),
    created_at      TIMESTAMPTZ DEFAULT NOW(),
    updated_at      TIMESTAMPTZ DEFAULT NOW(),
    deleted_at      TIMESTAMPTZ
);

CREATE TABLE executions (
    id              VARCHAR(36) PRIMARY KEY,
    workflow_id     VARCHAR(36) NOT NULL REFERENCES workflows(id),
    user_id         VARCHAR(36) NOT NULL REFERENCES users(id),
    status          VARCHAR(20) NOT NULL,
    trigger_type    VARCHAR(50) DEFAULT 'manual',
    inputs          JSON DEFAULT '{}',
    outputs         JSON DEFAULT '{}',
    node_states     JSON DEFAULT '{}',
    error_message   TEXT,
    error_node_id   VARCHAR(100),
    started_at      TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ,
    duration_ms     INTEGER,
    token_usage     JSON DEFAULT '{}',
    created_at      TIMESTAMPTZ DEFAULT NOW(),
    -- additions: the definition version that ran, and who was running it (crash detection)
    workflow_version INTEGER,
    owner_pid       INTEGER,
    cost_usd        DOUBLE DEFAULT 0
);

CREATE TABLE agents (
    id              VARCHAR(36) PRIMARY KEY,
    user_id         VARCHAR(36) NOT NULL REFERENCES users(id),
    workflow_id     VARCHAR(36) NOT NULL REFERENCES workflows(id),
    name            VARCHAR(200) NOT NULL,
    slug            VARCHAR(100) UNIQUE NOT NULL,
    description     TEXT,
    icon            VARCHAR(500),
    category        VARCHAR(50),
    tags            JSON DEFAULT '[]',
    status          VARCHAR(20) DEFAULT 'draft',
    pricing_type    VARCHAR(20) DEFAULT 'free',
    price           DECIMAL(10, 2),
    use_count       INTEGER DEFAULT 0,
    star_count      INTEGER DEFAULT 0,
    avg_rating      DECIMAL(3, 2) DEFAULT 0,
    version         VARCHAR(20) DEFAULT '1.0.0',
    created_at      TIMESTAMPTZ DEFAULT NOW(),
    updated_at      TIMESTAMPTZ DEFAULT NOW(),
    published_at    TIMESTAMPTZ
);

CREATE INDEX idx_workflows_user ON workflows(user_id);
CREATE INDEX idx_workflows_status ON workflows(status);
CREATE INDEX idx_executions_workflow ON executions(workflow_id);
CREATE INDEX idx_executions_user ON executions(user_id);
CREATE INDEX idx_executions_status ON executions(status);
CREATE INDEX idx_executions_created ON executions(created_at DESC);
CREATE INDEX idx_agents_user ON agents(user_id);
CREATE INDEX idx_agents_category ON agents(category);
CREATE INDEX idx_agents_status ON agents(status);

-- One row per node attempt. No primary key or index: rows are appended in batches,
-- and DuckDB's zone maps serve the execution_id lookups.
CREATE TABLE node_runs (
    execution_id    VARCHAR(36) NOT NULL,
    node_id         VARCHAR(100) NOT NULL,
    node_type       VARCHAR(50) NOT NULL,
    status          VARCHAR(20) NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      TIMESTAMPTZ,
    ended_at        TIMESTAMPTZ,
    duration_ms     DOUBLE,
    inputs          JSON,
    outputs         JSON,
    error           JSON,
    tokens          INTEGER DEFAULT 0,
    cost            DOUBLE DEFAULT 0,
    metadata        JSON
);

CREATE TABLE workflow_versions (
    workflow_id     VARCHAR(36) NOT NULL REFERENCES workflows(id),
    version         INTEGER NOT NULL,
    definition      JSON NOT NULL,
    message         TEXT,
    created_at      TIMESTAMPTZ DEFAULT NOW(),
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE node_cache (
    cache_key       VARCHAR(64) PRIMARY KEY,
    node_type       VARCHAR(50) NOT NULL,
    outputs         JSON NOT NULL,
    hits            INTEGER DEFAULT 0,
    created_at      TIMESTAMPTZ DEFAULT NOW(),
    last_used_at    TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE secrets (
    name            VARCHAR(100) PRIMARY KEY,
    nonce           BLOB NOT NULL,
    ciphertext      BLOB NOT NULL,
    key_id          VARCHAR(16) NOT NULL,
    created_at      TIMESTAMPTZ DEFAULT NOW(),
    updated_at      TIMESTAMPTZ DEFAULT NOW()
);

-- The local, single-user mode owns everything as this user.
INSERT INTO users (id, email, username, display_name)
VALUES ('local', 'local@localhost', 'local', 'Local user');
