-- MaEVe's own tables that ocpi-parties reads and writes, as MaEVe's PostgreSQL store creates them
-- (migration 000005_create_ocpi_locations). Used by `ocpi-parties db init` for development and test
-- databases: every statement only creates what is absent, so it never changes a real MaEVe database.
-- MaEVe's migration bookkeeping (schema_migrations) is deliberately NOT created or written here.

CREATE TABLE IF NOT EXISTS ocpi_registrations (
    token       VARCHAR(255) PRIMARY KEY,
    status      VARCHAR(50)  NOT NULL,
    created_at  TIMESTAMP    NOT NULL DEFAULT NOW(),
    updated_at  TIMESTAMP    NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS ocpi_parties (
    id            BIGSERIAL     PRIMARY KEY,
    role          VARCHAR(50)   NOT NULL,
    country_code  VARCHAR(2)    NOT NULL,
    party_id      VARCHAR(3)    NOT NULL,
    url           VARCHAR(1024) NOT NULL,
    token         VARCHAR(255)  NOT NULL,
    created_at    TIMESTAMP     NOT NULL DEFAULT NOW(),
    updated_at    TIMESTAMP     NOT NULL DEFAULT NOW(),
    CONSTRAINT ocpi_party_unique UNIQUE (role, country_code, party_id)
);
CREATE INDEX IF NOT EXISTS idx_ocpi_parties_role ON ocpi_parties (role);

CREATE TABLE IF NOT EXISTS locations (
    id             VARCHAR(48)  PRIMARY KEY,
    country_code   VARCHAR(2)   NOT NULL,
    party_id       VARCHAR(3)   NOT NULL,
    location_data  JSONB        NOT NULL,
    created_at     TIMESTAMP    NOT NULL DEFAULT NOW(),
    updated_at     TIMESTAMP    NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_locations_country_party ON locations (country_code, party_id);
