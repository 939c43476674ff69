-- Location ownership, enforced by the database.
--
-- A location belongs to the CPO role row of its party. The foreign key is on (country_code, party_id,
-- party_role) -> ocpi_parties (country_code, party_id, role), the only form PostgreSQL accepts because it
-- matches ocpi_party_unique; party_role is 'CPO' for an owned location and NULL for an unowned one, which
-- the key (MATCH SIMPLE) does not check. The guard trigger below keeps party_role right for every writer,
-- including MaEVe's own statements, which name no real party (party_id 'XXX'):
--
--   * a write naming a CPO party row is owned by that party;
--   * a write naming an unknown party lands on the default party (system_config 'default_party'),
--     or stays unowned (party_role NULL) while no default party exists;
--   * an owned location that is written again with an unknown party, or with the default party that
--     the insert guard substituted for one (MaEVe's upsert copies EXCLUDED.country_code/party_id, which
--     carry that substitution), keeps its owner;
--   * inside a transaction that set `ocpi_parties.move_locations` to 'on' (ocpi-parties' own moves),
--     the written party is taken as it is; the foreign key rejects it unless it is a CPO.
--
-- Where location_data holds OCPI `country_code`/`party_id` keys, they follow the row's columns.

ALTER TABLE locations ADD COLUMN IF NOT EXISTS party_role VARCHAR(50);

COMMENT ON COLUMN locations.party_role IS
    'ocpi-parties: ''CPO'' when (country_code, party_id) names the owning CPO row of ocpi_parties, '
    'NULL while the location has no owner. Maintained by the trigger locations_owner_guard.';

-- Existing locations that already name a CPO party belong to it.
UPDATE locations AS l
   SET party_role = 'CPO'
  FROM ocpi_parties AS p
 WHERE p.role = 'CPO'
   AND p.country_code = l.country_code
   AND p.party_id = l.party_id
   AND l.party_role IS DISTINCT FROM 'CPO';

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
         WHERE conname = 'locations_party_fk' AND conrelid = 'locations'::regclass
    ) THEN
        -- NOT VALID: no scan of the table now; new and updated rows are checked at once.
        ALTER TABLE locations ADD CONSTRAINT locations_party_fk
            FOREIGN KEY (country_code, party_id, party_role)
            REFERENCES ocpi_parties (country_code, party_id, role)
            NOT VALID;
    END IF;
END
$$;

-- SECURITY DEFINER: the guard runs with the rights of the role that migrated, so MaEVe's role needs no
-- new grant (on system_config, say) for its location writes to keep working. Its search_path is pinned
-- below to the schema of these tables, with pg_temp last, as a SECURITY DEFINER function must.
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

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION reconciler_location_owner_guard() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

DROP TRIGGER IF EXISTS locations_owner_guard ON locations;
CREATE TRIGGER locations_owner_guard
    BEFORE INSERT OR UPDATE ON locations
    FOR EACH ROW EXECUTE FUNCTION reconciler_location_owner_guard();
