-- Back to 0005: the recorded identities, the claims and moves the guard read, and holds_credentials go;
-- the guard of 0005 comes back, and the management records reference their rows again.
DROP INDEX IF EXISTS locations_recorded_owner;
ALTER TABLE locations DROP COLUMN IF EXISTS recorded_country_code;
ALTER TABLE locations DROP COLUMN IF EXISTS recorded_party_id;
DROP TABLE IF EXISTS reconciler_location_claims;
DROP TABLE IF EXISTS reconciler_moved_from;
DELETE FROM reconciler_managed_parties AS m
 WHERE NOT EXISTS (
    SELECT 1 FROM ocpi_parties AS p WHERE p.id = m.party_row_id AND p.created_at = m.row_created_at
 );
ALTER TABLE reconciler_managed_parties DROP COLUMN IF EXISTS row_created_at;
ALTER TABLE reconciler_managed_parties
    ADD FOREIGN KEY (party_row_id) REFERENCES ocpi_parties (id) ON DELETE CASCADE;
DROP INDEX IF EXISTS ocpi_parties_cpo_identity;
ALTER TABLE ocpi_parties DROP COLUMN IF EXISTS holds_credentials;
CREATE OR REPLACE FUNCTION reconciler_location_owner_guard() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
AS $$
DECLARE
    moving      boolean := coalesce(current_setting('ocpi_parties.move_locations', true), '') = 'on';
    is_cpo      boolean;
    default_cc  varchar(2);
    default_pid varchar(3);
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.party_role IS NOT NULL
       AND NEW.country_code = OLD.country_code AND NEW.party_id = OLD.party_id THEN
        -- The owner is not touched: nothing to look up.
        NEW.party_role := OLD.party_role;
    ELSIF moving THEN
        -- The foreign key checks that the party written holds the CPO role.
        NEW.party_role := 'CPO';
    ELSE
        is_cpo := EXISTS (
            SELECT 1 FROM ocpi_parties AS p
             WHERE p.role = 'CPO' AND p.country_code = NEW.country_code AND p.party_id = NEW.party_id
        );
        IF is_cpo AND (TG_OP = 'INSERT' OR OLD.party_role IS NULL) THEN
            NEW.party_role := 'CPO';
        ELSE
            SELECT p.country_code, p.party_id INTO default_cc, default_pid
              FROM system_config AS c
              JOIN ocpi_parties AS p
                ON p.role = 'CPO'
               AND p.country_code = split_part(c.value, '-', 1)
               AND p.party_id = split_part(c.value, '-', 2)
             WHERE c.key = 'default_party';

            IF TG_OP = 'UPDATE' AND OLD.party_role IS NOT NULL
               AND (NOT is_cpo OR (NEW.country_code = default_cc AND NEW.party_id = default_pid)) THEN
                NEW.country_code := OLD.country_code;
                NEW.party_id := OLD.party_id;
                NEW.party_role := OLD.party_role;
            ELSIF is_cpo THEN
                NEW.party_role := 'CPO';
            ELSIF default_cc IS NOT NULL THEN
                NEW.country_code := default_cc;
                NEW.party_id := default_pid;
                NEW.party_role := 'CPO';
            ELSE
                NEW.party_role := NULL;
            END IF;
        END IF;
    END IF;

    IF NEW.location_data ? 'country_code'
       AND NEW.location_data ->> 'country_code' IS DISTINCT FROM NEW.country_code THEN
        NEW.location_data := jsonb_set(NEW.location_data, '{country_code}', to_jsonb(NEW.country_code));
    END IF;
    IF NEW.location_data ? 'party_id'
       AND NEW.location_data ->> 'party_id' IS DISTINCT FROM NEW.party_id THEN
        NEW.location_data := jsonb_set(NEW.location_data, '{party_id}', to_jsonb(NEW.party_id));
    END IF;
    RETURN NEW;
END
$$;

DROP FUNCTION IF EXISTS reconciler_location_owner(text, text, text);

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION reconciler_location_owner_guard() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
