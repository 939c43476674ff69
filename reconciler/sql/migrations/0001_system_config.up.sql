-- Key/value settings shared with MaEVe. `default_party` holds the CPO (e.g. GB-TWK) that owns every
-- location nobody else claims; the location guard (0005) reads it.
CREATE TABLE IF NOT EXISTS system_config (
    key         VARCHAR(50) PRIMARY KEY,
    value       TEXT        NOT NULL,
    updated_at  TIMESTAMP   NOT NULL DEFAULT NOW()
);
