-- Key/value settings shared with MaEVe. `default_party` holds the CPO (e.g. GB-TWK) that owns every
-- location nobody else claims; the location guard reads it. A system_config that exists already (another
-- tool, or MaEVe itself, may have made one) is used as it is; only a table created here says so in its
-- comment, and only such a table is dropped by this migration's down.
DO $$
BEGIN
    IF to_regclass('system_config') IS NULL THEN
        CREATE TABLE system_config (
            key         VARCHAR(50) PRIMARY KEY,
            value       TEXT        NOT NULL,
            updated_at  TIMESTAMP   NOT NULL DEFAULT NOW()
        );
        COMMENT ON TABLE system_config IS 'ocpi-parties: created by its migration 0001_system_config';
    END IF;
END
$$;
