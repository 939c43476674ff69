-- One row per `ocpi-parties apply`: when, which revision of the party files, who, and what changed.
-- `state` keeps what the managed rows looked like after the apply, so a later plan can show drift.
CREATE TABLE IF NOT EXISTS reconciler_apply_history (
    id            BIGSERIAL    PRIMARY KEY,
    applied_at    TIMESTAMPTZ  NOT NULL DEFAULT NOW(),
    revision      TEXT,
    actor         TEXT         NOT NULL,
    tool_version  TEXT         NOT NULL,
    summary       TEXT         NOT NULL,
    changes       JSONB        NOT NULL DEFAULT '[]'::jsonb,
    state         JSONB
);
