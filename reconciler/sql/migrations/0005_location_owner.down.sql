-- Locations keep the country_code/party_id they were moved to; only the key, the guard and the
-- party_role column go.
DROP TRIGGER IF EXISTS locations_owner_guard ON locations;
DROP FUNCTION IF EXISTS reconciler_location_owner_guard();
ALTER TABLE locations DROP CONSTRAINT IF EXISTS locations_party_fk;
ALTER TABLE locations DROP COLUMN IF EXISTS party_role;
