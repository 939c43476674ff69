-- Who owns what, beside a running MaEVe (docs/database.md, "Ownership").
--
-- * ocpi_parties.holds_credentials: whether OCPI registration gave the row a token. It is computed by
--   PostgreSQL from the token, so ocpi-parties can tell registration's rows from its own without ever
--   reading a token. A row that holds credentials belongs to registration: ocpi-parties never deletes it
--   and never writes its url or token.
-- * reconciler_managed_parties no longer references ocpi_parties: nothing of ocpi-parties may depend on
--   MaEVe's tables from outside them, or MaEVe's own down migration (DROP TABLE ocpi_parties) fails. A
--   record matches its row by id and creation time, so a row registered again after a reset is another row.
-- * locations.recorded_country_code/recorded_party_id: the identity the writer gave a location, in upper
--   case; NULL when it gave none (MaEVe writes the placeholder party XXX). The owner (country_code,
--   party_id, party_role) is derived from it by reconciler_location_owner().
-- * reconciler_location_claims and reconciler_moved_from: the party files' `locations:` and `moved_from:`,
--   written by apply, so that the guard gives MaEVe's new writes the owner the files say.

ALTER TABLE ocpi_parties
    ADD COLUMN IF NOT EXISTS holds_credentials boolean GENERATED ALWAYS AS (token <> '') STORED;

COMMENT ON COLUMN ocpi_parties.holds_credentials IS
    'ocpi-parties: true when OCPI registration gave this row a token (computed from token).';

-- The CPO row of an identity, found case-insensitively (a registration may write es/cpo).
CREATE INDEX IF NOT EXISTS ocpi_parties_cpo_identity
    ON ocpi_parties (upper(country_code), upper(party_id)) WHERE role = 'CPO';

DO $$
DECLARE
    name text;
BEGIN
    FOR name IN
        SELECT conname FROM pg_constraint
         WHERE conrelid = 'reconciler_managed_parties'::regclass AND contype = 'f'
           AND confrelid = 'ocpi_parties'::regclass
    LOOP
        EXECUTE format('ALTER TABLE reconciler_managed_parties DROP CONSTRAINT %I', name);
    END LOOP;
END
$$;

ALTER TABLE reconciler_managed_parties ADD COLUMN IF NOT EXISTS row_created_at timestamp;
UPDATE reconciler_managed_parties AS m
   SET row_created_at = p.created_at
  FROM ocpi_parties AS p
 WHERE p.id = m.party_row_id AND m.row_created_at IS NULL;
DELETE FROM reconciler_managed_parties WHERE row_created_at IS NULL;
ALTER TABLE reconciler_managed_parties ALTER COLUMN row_created_at SET NOT NULL;

CREATE TABLE IF NOT EXISTS reconciler_location_claims (
    location_id   VARCHAR(48) PRIMARY KEY,
    country_code  VARCHAR(2)  NOT NULL,
    party_id      VARCHAR(3)  NOT NULL
);

CREATE TABLE IF NOT EXISTS reconciler_moved_from (
    country_code     VARCHAR(2) NOT NULL,
    party_id         VARCHAR(3) NOT NULL,
    to_country_code  VARCHAR(2) NOT NULL,
    to_party_id      VARCHAR(3) NOT NULL,
    PRIMARY KEY (country_code, party_id)
);

-- The owner the files and the database give a location: claimed by id -> the claimant; recorded under an
-- identity with a CPO row -> that row; recorded under an identity a hosted party's moved_from names -> that
-- party; otherwise the default party; NULL while there is none. Identities match case-insensitively; among
-- CPO rows that differ only in case, the oldest (lowest id) owns. plan.location_owner is the same function.
CREATE OR REPLACE FUNCTION reconciler_location_owner(
    location_id text, recorded_cc text, recorded_pid text, OUT owner_cc varchar, OUT owner_pid varchar
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
AS $$
BEGIN
    SELECT p.country_code, p.party_id INTO owner_cc, owner_pid
      FROM reconciler_location_claims AS c
      JOIN ocpi_parties AS p
        ON p.role = 'CPO' AND upper(p.country_code) = c.country_code AND upper(p.party_id) = c.party_id
     WHERE c.location_id = reconciler_location_owner.location_id
     ORDER BY p.id
     LIMIT 1;
    IF FOUND THEN
        RETURN;
    END IF;
    IF recorded_cc IS NOT NULL THEN
        SELECT p.country_code, p.party_id INTO owner_cc, owner_pid
          FROM ocpi_parties AS p
         WHERE p.role = 'CPO' AND upper(p.country_code) = recorded_cc AND upper(p.party_id) = recorded_pid
         ORDER BY p.id
         LIMIT 1;
        IF FOUND THEN
            RETURN;
        END IF;
        SELECT p.country_code, p.party_id INTO owner_cc, owner_pid
          FROM reconciler_moved_from AS m
          JOIN ocpi_parties AS p
            ON p.role = 'CPO' AND upper(p.country_code) = m.to_country_code
           AND upper(p.party_id) = m.to_party_id
         WHERE m.country_code = recorded_cc AND m.party_id = recorded_pid
         ORDER BY p.id
         LIMIT 1;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    SELECT p.country_code, p.party_id INTO owner_cc, owner_pid
      FROM system_config AS c
      JOIN ocpi_parties AS p
        ON p.role = 'CPO'
       AND upper(p.country_code) = upper(split_part(c.value, '-', 1))
       AND upper(p.party_id) = upper(split_part(c.value, '-', 2))
     WHERE c.key = 'default_party'
     ORDER BY p.id
     LIMIT 1;
END
$$;

-- The guard, for every writer. Inside a transaction that set `ocpi_parties.move_locations` to 'on'
-- (ocpi-parties' own moves) the row is taken as written. Otherwise:
--   * the identity the writer gave is recorded, unless it is MaEVe's placeholder XXX, which records nothing
--     and keeps what an earlier writer recorded;
--   * the owner is reconciler_location_owner(); with none, the row keeps what the writer gave, unowned.
-- MaEVe's SetLocation is an INSERT ... ON CONFLICT DO UPDATE that copies EXCLUDED.country_code/party_id,
-- which hold the owner the INSERT trigger put there, not what MaEVe gave: the INSERT trigger keeps what the
-- writer gave in a transaction-local setting, and the UPDATE trigger of the same row reads it back.
CREATE OR REPLACE FUNCTION reconciler_location_owner_guard() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
AS $$
DECLARE
    moving      boolean := coalesce(current_setting('ocpi_parties.move_locations', true), '') = 'on';
    inserted    text := coalesce(current_setting('ocpi_parties.inserted_location', true), '');
    writer_cc   text := NEW.country_code;
    writer_pid  text := NEW.party_id;
    derive      boolean := true;
    found_cc    varchar;
    found_pid   varchar;
BEGIN
    IF NOT moving THEN
        IF TG_OP = 'UPDATE' THEN
            IF inserted <> ''
               AND split_part(inserted, chr(31), 1) = NEW.id
               AND split_part(inserted, chr(31), 4) = NEW.country_code
               AND split_part(inserted, chr(31), 5) = NEW.party_id THEN
                writer_cc := split_part(inserted, chr(31), 2);
                writer_pid := split_part(inserted, chr(31), 3);
                PERFORM set_config('ocpi_parties.inserted_location', '', true);
            ELSIF NEW.country_code = OLD.country_code AND NEW.party_id = OLD.party_id THEN
                derive := false;  -- the identity was not written: keep what was recorded
            END IF;
        END IF;

        IF NOT derive OR upper(writer_pid) = 'XXX' THEN
            IF TG_OP = 'INSERT' THEN
                NEW.recorded_country_code := NULL;
                NEW.recorded_party_id := NULL;
            ELSE
                NEW.recorded_country_code := OLD.recorded_country_code;
                NEW.recorded_party_id := OLD.recorded_party_id;
            END IF;
        ELSE
            NEW.recorded_country_code := upper(writer_cc);
            NEW.recorded_party_id := upper(writer_pid);
        END IF;

        SELECT o.owner_cc, o.owner_pid INTO found_cc, found_pid
          FROM reconciler_location_owner(NEW.id, NEW.recorded_country_code, NEW.recorded_party_id) AS o;
        IF found_cc IS NOT NULL THEN
            NEW.country_code := found_cc;
            NEW.party_id := found_pid;
            NEW.party_role := 'CPO';
        ELSIF derive THEN
            NEW.country_code := writer_cc;
            NEW.party_id := writer_pid;
            NEW.party_role := NULL;
        ELSE
            NEW.party_role := NULL;
        END IF;

        IF TG_OP = 'INSERT' THEN
            PERFORM set_config(
                'ocpi_parties.inserted_location',
                concat_ws(chr(31), NEW.id, writer_cc, writer_pid, NEW.country_code, NEW.party_id),
                true
            );
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
    EXECUTE format('ALTER FUNCTION reconciler_location_owner(text, text, text) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION reconciler_location_owner_guard() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

-- The recorded identity of the locations already stored (docs/database.md, "Upgrading"): none for MaEVe's
-- own rows (Go field names, `Country`; MaEVe always writes XXX) and for rows under XXX; for any other row,
-- the identity it is stored under now. Added, filled and indexed only once: a run after MaEVe dropped and
-- created the table again fills the new column the same way.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'locations'
           AND column_name = 'recorded_country_code'
    ) THEN
        ALTER TABLE locations
            ADD COLUMN recorded_country_code VARCHAR(2),
            ADD COLUMN recorded_party_id VARCHAR(3);
        PERFORM set_config('ocpi_parties.move_locations', 'on', true);
        UPDATE locations
           SET recorded_country_code = upper(country_code), recorded_party_id = upper(party_id)
         WHERE upper(party_id) <> 'XXX' AND NOT location_data ? 'Country';
        PERFORM set_config('ocpi_parties.move_locations', 'off', true);
    END IF;
END
$$;

COMMENT ON COLUMN locations.recorded_country_code IS
    'ocpi-parties: country_code of the party the writer gave this location (NULL: none, e.g. MaEVe''s XXX).';
COMMENT ON COLUMN locations.recorded_party_id IS
    'ocpi-parties: party_id of the party the writer gave this location (NULL: none, e.g. MaEVe''s XXX).';

-- plan counts the locations per owner and recorded identity from this index alone (an index-only scan
-- already in GROUP BY order), and apply's moves find a group's rows with it.
CREATE INDEX IF NOT EXISTS locations_recorded_owner
    ON locations (country_code, party_id, recorded_country_code, recorded_party_id, party_role);
