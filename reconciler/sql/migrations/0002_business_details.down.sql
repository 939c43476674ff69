-- Loses the business details stored by ocpi-parties; MaEVe's own columns are untouched.
ALTER TABLE ocpi_parties DROP COLUMN IF EXISTS business_details;
