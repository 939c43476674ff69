-- The party rows ocpi-parties manages, because it created them or a party file adopted them. Every other
-- row of ocpi_parties (for example one written by OCPI registration) is never changed or deleted by it.
-- Keyed by the row id: a row deleted and registered again by MaEVe comes back unmanaged.
CREATE TABLE IF NOT EXISTS reconciler_managed_parties (
    party_row_id   BIGINT       PRIMARY KEY REFERENCES ocpi_parties (id) ON DELETE CASCADE,
    how            VARCHAR(10)  NOT NULL CHECK (how IN ('created', 'adopted')),
    managed_since  TIMESTAMPTZ  NOT NULL DEFAULT NOW(),
    apply_id       BIGINT       REFERENCES reconciler_apply_history (id) ON DELETE SET NULL
);
