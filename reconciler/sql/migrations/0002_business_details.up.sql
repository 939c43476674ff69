-- OCPI BusinessDetails (name, website, logo) of each party role. Nullable and without a default, so the
-- column is added without rewriting the table and MaEVe's INSERTs, which do not name it, keep working.
ALTER TABLE ocpi_parties ADD COLUMN IF NOT EXISTS business_details JSONB;
