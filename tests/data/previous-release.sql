-- A MaEVe database as ocpi-parties 0.x (commit f8f36bf, the release before the hosted/partner model) left it:
-- MaEVe's tables with registration rows (NL-VLT EMSP, BE-PEE CPO) and locations written by MaEVe's SetLocation and
-- by a writer of OCPI JSON (PT-CPO, FR-CPO); then that release's `apply` of its example parties/: rows for every
-- declared role with an empty token (DE-EMO CPO and EMSP), every location given to the default party GB-TWK.
-- Made with pg_dump --inserts; tests/db/test_upgrade.py loads it.
CREATE FUNCTION public.reconciler_location_owner_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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
CREATE TABLE public.locations (
    id character varying(48) NOT NULL,
    country_code character varying(2) NOT NULL,
    party_id character varying(3) NOT NULL,
    location_data jsonb NOT NULL,
    created_at timestamp without time zone DEFAULT now() NOT NULL,
    updated_at timestamp without time zone DEFAULT now() NOT NULL,
    party_role character varying(50)
);
COMMENT ON COLUMN public.locations.party_role IS 'ocpi-parties: ''CPO'' when (country_code, party_id) names the owning CPO row of ocpi_parties, NULL while the location has no owner. Maintained by the trigger locations_owner_guard.';
CREATE TABLE public.ocpi_parties (
    id bigint NOT NULL,
    role character varying(50) NOT NULL,
    country_code character varying(2) NOT NULL,
    party_id character varying(3) NOT NULL,
    url character varying(1024) NOT NULL,
    token character varying(255) NOT NULL,
    created_at timestamp without time zone DEFAULT now() NOT NULL,
    updated_at timestamp without time zone DEFAULT now() NOT NULL,
    business_details jsonb
);
CREATE SEQUENCE public.ocpi_parties_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.ocpi_parties_id_seq OWNED BY public.ocpi_parties.id;
CREATE TABLE public.ocpi_registrations (
    token character varying(255) NOT NULL,
    status character varying(50) NOT NULL,
    created_at timestamp without time zone DEFAULT now() NOT NULL,
    updated_at timestamp without time zone DEFAULT now() NOT NULL
);
CREATE TABLE public.reconciler_apply_history (
    id bigint NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    revision text,
    actor text NOT NULL,
    tool_version text NOT NULL,
    summary text NOT NULL,
    changes jsonb DEFAULT '[]'::jsonb NOT NULL,
    state jsonb
);
CREATE SEQUENCE public.reconciler_apply_history_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.reconciler_apply_history_id_seq OWNED BY public.reconciler_apply_history.id;
CREATE TABLE public.reconciler_managed_parties (
    party_row_id bigint NOT NULL,
    how character varying(10) NOT NULL,
    managed_since timestamp with time zone DEFAULT now() NOT NULL,
    apply_id bigint,
    CONSTRAINT reconciler_managed_parties_how_check CHECK (((how)::text = ANY ((ARRAY['created'::character varying, 'adopted'::character varying])::text[])))
);
CREATE TABLE public.reconciler_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    applied_by text DEFAULT CURRENT_USER NOT NULL
);
CREATE TABLE public.system_config (
    key character varying(50) NOT NULL,
    value text NOT NULL,
    updated_at timestamp without time zone DEFAULT now() NOT NULL
);
ALTER TABLE ONLY public.ocpi_parties ALTER COLUMN id SET DEFAULT nextval('public.ocpi_parties_id_seq'::regclass);
ALTER TABLE ONLY public.reconciler_apply_history ALTER COLUMN id SET DEFAULT nextval('public.reconciler_apply_history_id_seq'::regclass);
INSERT INTO public.locations VALUES ('LOC-LDN-0', 'GB', 'TWK', '{"Id": "LOC-LDN-0", "City": "Brussels", "Name": "Site LOC-LDN-0", "Evses": [], "Address": "Rue de la Loi 16", "Country": "GB", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.257278', '2026-12-02 04:30:25.257278', 'CPO');
INSERT INTO public.locations VALUES ('LOC-LDN-1', 'GB', 'TWK', '{"Id": "LOC-LDN-1", "City": "Brussels", "Name": "Site LOC-LDN-1", "Evses": [], "Address": "Rue de la Loi 16", "Country": "GB", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.25806', '2026-12-02 04:30:25.25806', 'CPO');
INSERT INTO public.locations VALUES ('LOC-LDN-2', 'GB', 'TWK', '{"Id": "LOC-LDN-2", "City": "Brussels", "Name": "Site LOC-LDN-2", "Evses": [], "Address": "Rue de la Loi 16", "Country": "GB", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.258604', '2026-12-02 04:30:25.258604', 'CPO');
INSERT INTO public.locations VALUES ('LOC-LDN-3', 'GB', 'TWK', '{"Id": "LOC-LDN-3", "City": "Brussels", "Name": "Site LOC-LDN-3", "Evses": [], "Address": "Rue de la Loi 16", "Country": "GB", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.259098', '2026-12-02 04:30:25.259098', 'CPO');
INSERT INTO public.locations VALUES ('LOC-BRU-0', 'GB', 'TWK', '{"Id": "LOC-BRU-0", "City": "Brussels", "Name": "Site LOC-BRU-0", "Evses": [], "Address": "Rue de la Loi 16", "Country": "BE", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.259577', '2026-12-02 04:30:25.259577', 'CPO');
INSERT INTO public.locations VALUES ('LOC-BRU-1', 'GB', 'TWK', '{"Id": "LOC-BRU-1", "City": "Brussels", "Name": "Site LOC-BRU-1", "Evses": [], "Address": "Rue de la Loi 16", "Country": "BE", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.260134', '2026-12-02 04:30:25.260134', 'CPO');
INSERT INTO public.locations VALUES ('LOC-BRU-2', 'GB', 'TWK', '{"Id": "LOC-BRU-2", "City": "Brussels", "Name": "Site LOC-BRU-2", "Evses": [], "Address": "Rue de la Loi 16", "Country": "BE", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.260605', '2026-12-02 04:30:25.260605', 'CPO');
INSERT INTO public.locations VALUES ('LOC-NEW-0', 'GB', 'TWK', '{"Id": "LOC-NEW-0", "City": "Brussels", "Name": "Site LOC-NEW-0", "Evses": [], "Address": "Rue de la Loi 16", "Country": "", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.261125', '2026-12-02 04:30:25.261125', 'CPO');
INSERT INTO public.locations VALUES ('LOC-NEW-1', 'GB', 'TWK', '{"Id": "LOC-NEW-1", "City": "Brussels", "Name": "Site LOC-NEW-1", "Evses": [], "Address": "Rue de la Loi 16", "Country": "", "PostalCode": "1000", "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"}, "LastUpdated": "2026-01-01T00:00:00Z", "ParkingType": "ON_STREET"}', '2026-12-02 04:30:25.261532', '2026-12-02 04:30:25.261532', 'CPO');
INSERT INTO public.locations VALUES ('LOC-PT-0', 'GB', 'TWK', '{"id": "LOC-PT-0", "name": "LOC-PT-0", "country": "PRT", "party_id": "TWK", "country_code": "GB"}', '2026-12-02 04:30:25.261984', '2026-12-02 04:30:25.261984', 'CPO');
INSERT INTO public.locations VALUES ('LOC-PT-1', 'GB', 'TWK', '{"id": "LOC-PT-1", "name": "LOC-PT-1", "country": "PRT", "party_id": "TWK", "country_code": "GB"}', '2026-12-02 04:30:25.262353', '2026-12-02 04:30:25.262353', 'CPO');
INSERT INTO public.locations VALUES ('LOC-FR-0', 'GB', 'TWK', '{"id": "LOC-FR-0", "name": "LOC-FR-0", "country": "FRA", "party_id": "TWK", "country_code": "GB"}', '2026-12-02 04:30:25.262709', '2026-12-02 04:30:25.262709', 'CPO');
INSERT INTO public.ocpi_parties VALUES (2, 'CPO', 'BE', 'PEE', 'https://ocpi.peer-charging.example/versions', 'peer-secret-token-5f1c', '2026-12-02 04:30:25.256685', '2026-12-02 04:30:25.256685', NULL);
INSERT INTO public.ocpi_parties VALUES (3, 'CPO', 'DE', 'EMO', 'https://ocpi.elektromobil.example/versions', '', '2026-12-02 04:30:25.498044', '2026-12-02 04:30:25.498044', '{"logo": {"url": "https://www.elektromobil.example/logo.svg", "type": "svg", "category": "OPERATOR"}, "name": "Elektromobil GmbH", "website": "https://www.elektromobil.example"}');
INSERT INTO public.ocpi_parties VALUES (4, 'EMSP', 'DE', 'EMO', 'https://ocpi.elektromobil.example/versions', '', '2026-12-02 04:30:25.498044', '2026-12-02 04:30:25.498044', '{"logo": {"url": "https://www.elektromobil.example/logo.svg", "type": "svg", "category": "OPERATOR"}, "name": "Elektromobil Ladekarte", "website": "https://www.elektromobil.example"}');
INSERT INTO public.ocpi_parties VALUES (5, 'CPO', 'ES', 'CPO', 'https://ocpi.cargaiberica.example/ocpi/versions', '', '2026-12-02 04:30:25.498044', '2026-12-02 04:30:25.498044', '{"name": "Carga Ibérica", "website": "https://www.cargaiberica.example"}');
INSERT INTO public.ocpi_parties VALUES (6, 'CPO', 'GB', 'TWK', '', '', '2026-12-02 04:30:25.498044', '2026-12-02 04:30:25.498044', '{"logo": {"url": "https://www.thoughtworks.example/assets/logo.png", "type": "png", "width": 512, "height": 512, "category": "OPERATOR", "thumbnail": "https://www.thoughtworks.example/assets/logo-128.png"}, "name": "Thoughtworks EV Charging", "website": "https://www.thoughtworks.example/ev-charging"}');
INSERT INTO public.ocpi_parties VALUES (1, 'EMSP', 'NL', 'VLT', 'https://api.voltkaart.example/ocpi/versions', 'peer-secret-token-5f1c', '2026-12-02 04:30:25.255674', '2026-12-02 04:30:25.498044', '{"name": "Voltkaart", "website": "https://www.voltkaart.example"}');
INSERT INTO public.reconciler_apply_history VALUES (1, '2026-12-02 04:30:25.498044+00', NULL, 'root@vm', '0.1.0', 'Plan: 4 to add, 1 to change, 0 to delete, 1 to adopt; 12 locations to move; 5 migrations to run.', '[{"action": "run_migrations", "migrations": ["0001_system_config", "0002_business_details", "0003_apply_history", "0004_managed_parties", "0005_location_owner"]}, {"url": "https://ocpi.elektromobil.example/versions", "role": "CPO", "action": "create", "source": {"file": "parties/DE-EMO.yaml", "line": 14, "column": 5}, "identity": "DE-EMO", "business_details": {"logo": {"url": "https://www.elektromobil.example/logo.svg", "type": "svg", "category": "OPERATOR"}, "name": "Elektromobil GmbH", "website": "https://www.elektromobil.example"}}, {"url": "https://ocpi.elektromobil.example/versions", "role": "EMSP", "action": "create", "source": {"file": "parties/DE-EMO.yaml", "line": 15, "column": 5}, "identity": "DE-EMO", "business_details": {"logo": {"url": "https://www.elektromobil.example/logo.svg", "type": "svg", "category": "OPERATOR"}, "name": "Elektromobil Ladekarte", "website": "https://www.elektromobil.example"}}, {"url": "https://ocpi.cargaiberica.example/ocpi/versions", "role": "CPO", "action": "create", "source": {"file": "parties/ES-CPO.yaml", "line": 10, "column": 5}, "identity": "ES-CPO", "business_details": {"name": "Carga Ibérica", "website": "https://www.cargaiberica.example"}}, {"url": null, "role": "CPO", "action": "create", "source": {"file": "parties/GB-TWK.yaml", "line": 16, "column": 5}, "identity": "GB-TWK", "business_details": {"logo": {"url": "https://www.thoughtworks.example/assets/logo.png", "type": "png", "width": 512, "height": 512, "category": "OPERATOR", "thumbnail": "https://www.thoughtworks.example/assets/logo-128.png"}, "name": "Thoughtworks EV Charging", "website": "https://www.thoughtworks.example/ev-charging"}}, {"role": "EMSP", "action": "adopt", "source": {"file": "parties/NL-VLT.yaml", "line": 10, "column": 5}, "changes": [{"after": {"name": "Voltkaart", "website": "https://www.voltkaart.example"}, "field": "business_details", "before": null}], "identity": "NL-VLT"}, {"after": "GB-TWK", "action": "set_default_party", "before": null}, {"to": "GB-TWK", "count": 12, "action": "move_locations", "groups": [{"count": 3, "identity": "BE-XXX"}, {"count": 1, "identity": "FR-CPO"}, {"count": 4, "identity": "GB-XXX"}, {"count": 2, "identity": "PT-CPO"}, {"count": 2, "identity": "XX-XXX"}], "reason": "orphans", "source": null, "location_ids": []}]', '{"rows": [{"url": "https://ocpi.elektromobil.example/versions", "role": "CPO", "identity": "DE-EMO", "business_details": {"logo": {"url": "https://www.elektromobil.example/logo.svg", "type": "svg", "category": "OPERATOR"}, "name": "Elektromobil GmbH", "website": "https://www.elektromobil.example"}}, {"url": "https://ocpi.elektromobil.example/versions", "role": "EMSP", "identity": "DE-EMO", "business_details": {"logo": {"url": "https://www.elektromobil.example/logo.svg", "type": "svg", "category": "OPERATOR"}, "name": "Elektromobil Ladekarte", "website": "https://www.elektromobil.example"}}, {"url": "https://ocpi.cargaiberica.example/ocpi/versions", "role": "CPO", "identity": "ES-CPO", "business_details": {"name": "Carga Ibérica", "website": "https://www.cargaiberica.example"}}, {"url": "", "role": "CPO", "identity": "GB-TWK", "business_details": {"logo": {"url": "https://www.thoughtworks.example/assets/logo.png", "type": "png", "width": 512, "height": 512, "category": "OPERATOR", "thumbnail": "https://www.thoughtworks.example/assets/logo-128.png"}, "name": "Thoughtworks EV Charging", "website": "https://www.thoughtworks.example/ev-charging"}}, {"url": "https://api.voltkaart.example/ocpi/versions", "role": "EMSP", "identity": "NL-VLT", "business_details": {"name": "Voltkaart", "website": "https://www.voltkaart.example"}}]}');
INSERT INTO public.reconciler_managed_parties VALUES (3, 'created', '2026-12-02 04:30:25.498044+00', 1);
INSERT INTO public.reconciler_managed_parties VALUES (4, 'created', '2026-12-02 04:30:25.498044+00', 1);
INSERT INTO public.reconciler_managed_parties VALUES (5, 'created', '2026-12-02 04:30:25.498044+00', 1);
INSERT INTO public.reconciler_managed_parties VALUES (6, 'created', '2026-12-02 04:30:25.498044+00', 1);
INSERT INTO public.reconciler_managed_parties VALUES (1, 'adopted', '2026-12-02 04:30:25.498044+00', 1);
INSERT INTO public.reconciler_migrations VALUES (1, 'system_config', '8bfba12b66569a93e4cc8e6ac51e656483c6cedbe1af17103d628da2226f1751', '2026-12-02 04:30:25.498044+00', 'postgres');
INSERT INTO public.reconciler_migrations VALUES (2, 'business_details', '858f06797721d5dbcc5d3bd7ab549d82643a8692ef035bece95208ea6ae303c8', '2026-12-02 04:30:25.498044+00', 'postgres');
INSERT INTO public.reconciler_migrations VALUES (3, 'apply_history', '2c70b6d320d9e321e52c7de69a60265188893ab7c8ad90bcd5f2b327704931d5', '2026-12-02 04:30:25.498044+00', 'postgres');
INSERT INTO public.reconciler_migrations VALUES (4, 'managed_parties', '78807d361f494f0d4bfb1c726b8e7f523023362867bb7ee76d4224b03cd59879', '2026-12-02 04:30:25.498044+00', 'postgres');
INSERT INTO public.reconciler_migrations VALUES (5, 'location_owner', '6f1f79f051b34f94a8cffde7fd64813f99a52ad595a90f901f2f720d0dfed135', '2026-12-02 04:30:25.498044+00', 'postgres');
INSERT INTO public.system_config VALUES ('default_party', 'GB-TWK', '2026-12-02 04:30:25.498044');
SELECT pg_catalog.setval('public.ocpi_parties_id_seq', 6, true);
SELECT pg_catalog.setval('public.reconciler_apply_history_id_seq', 1, true);
ALTER TABLE ONLY public.locations
    ADD CONSTRAINT locations_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.ocpi_parties
    ADD CONSTRAINT ocpi_parties_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.ocpi_parties
    ADD CONSTRAINT ocpi_party_unique UNIQUE (role, country_code, party_id);
ALTER TABLE ONLY public.ocpi_registrations
    ADD CONSTRAINT ocpi_registrations_pkey PRIMARY KEY (token);
ALTER TABLE ONLY public.reconciler_apply_history
    ADD CONSTRAINT reconciler_apply_history_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.reconciler_managed_parties
    ADD CONSTRAINT reconciler_managed_parties_pkey PRIMARY KEY (party_row_id);
ALTER TABLE ONLY public.reconciler_migrations
    ADD CONSTRAINT reconciler_migrations_pkey PRIMARY KEY (version);
ALTER TABLE ONLY public.system_config
    ADD CONSTRAINT system_config_pkey PRIMARY KEY (key);
CREATE INDEX idx_locations_country_party ON public.locations USING btree (country_code, party_id);
CREATE INDEX idx_ocpi_parties_role ON public.ocpi_parties USING btree (role);
CREATE TRIGGER locations_owner_guard BEFORE INSERT OR UPDATE ON public.locations FOR EACH ROW EXECUTE FUNCTION public.reconciler_location_owner_guard();
ALTER TABLE ONLY public.locations
    ADD CONSTRAINT locations_party_fk FOREIGN KEY (country_code, party_id, party_role) REFERENCES public.ocpi_parties(country_code, party_id, role);
ALTER TABLE ONLY public.reconciler_managed_parties
    ADD CONSTRAINT reconciler_managed_parties_apply_id_fkey FOREIGN KEY (apply_id) REFERENCES public.reconciler_apply_history(id) ON DELETE SET NULL;
ALTER TABLE ONLY public.reconciler_managed_parties
    ADD CONSTRAINT reconciler_managed_parties_party_row_id_fkey FOREIGN KEY (party_row_id) REFERENCES public.ocpi_parties(id) ON DELETE CASCADE;
