"""The first schema: datasets with their cooperatives, location reports and decisions, the verified-location
overlay, tokens, the audit trail, and the public views a read-only role (QGIS) may read.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# Columns of a stored cooperative (coopgis.ingest.DATASET_COLUMNS), with their SQL types.
COLUMNS = """
    registration_no text NOT NULL,
    name text, kind text, sector text, status text,
    members bigint, jobs bigint, women_led boolean,
    registered_on text, registered_on_jalali text, registered_year bigint,
    province text, province_name text, county text, county_code text, county_osm bigint,
    district text, rural_district text, place text, place_level text, place_code text,
    precision text, confidence double precision, uncertainty_m bigint, geocode_issues text,
    deprivation_class text, deprived boolean, province_shdi double precision, border boolean,
    border_quota_usd bigint,
    address text, given_province text, given_county text, given_district text, given_rural_district text,
    given_place text, given_lon double precision, given_lat double precision,
    synthetic boolean NOT NULL DEFAULT false, phone text, extra text, source_row bigint
"""

UPGRADE = f"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS coopgis;
CREATE SCHEMA IF NOT EXISTS coopgis_public;
REVOKE ALL ON SCHEMA coopgis FROM PUBLIC;
REVOKE ALL ON SCHEMA coopgis_public FROM PUBLIC;

-- Records that are only ever appended to: an UPDATE, DELETE or TRUNCATE is an error.
CREATE FUNCTION coopgis.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'coopgis: % is append-only', TG_TABLE_NAME;
END $$;

-- One ingest's dataset; the served one is named by current_dataset (one row, switched in the ingest's
-- own transaction).
CREATE TABLE coopgis.datasets (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    rows integer NOT NULL CHECK (rows >= 0),
    report jsonb NOT NULL
);
CREATE TABLE coopgis.current_dataset (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    dataset_id bigint NOT NULL REFERENCES coopgis.datasets (id),
    switched_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE coopgis.cooperatives (
    dataset_id bigint NOT NULL REFERENCES coopgis.datasets (id) ON DELETE CASCADE,
    row_no integer NOT NULL,
    {COLUMNS},
    name_public text,      -- name and address with phone-like numbers masked (coopgis.privacy), as served
    address_public text,
    geom geometry(Point, 4326),
    PRIMARY KEY (dataset_id, row_no)
);
CREATE INDEX cooperatives_geom ON coopgis.cooperatives USING gist (geom);
CREATE INDEX cooperatives_registration_no ON coopgis.cooperatives (dataset_id, registration_no);

-- Location reports and decisions: the review's audit trail, in the order of one sequence.
CREATE SEQUENCE coopgis.event_seq;
CREATE TABLE coopgis.location_reports (
    seq bigint PRIMARY KEY DEFAULT nextval('coopgis.event_seq'),
    id text NOT NULL UNIQUE,
    registration_no text NOT NULL,
    reporter text NOT NULL,
    submitted_at timestamptz NOT NULL,
    from_lon double precision, from_lat double precision, from_precision text,
    to_lon double precision NOT NULL, to_lat double precision NOT NULL, to_accuracy_m double precision,
    reason text, note text,
    to_geom geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(to_lon, to_lat), 4326)) STORED
);
CREATE INDEX location_reports_registration_no ON coopgis.location_reports (registration_no);
CREATE TABLE coopgis.location_decisions (
    seq bigint PRIMARY KEY DEFAULT nextval('coopgis.event_seq'),
    id text NOT NULL UNIQUE,
    report_id text NOT NULL UNIQUE REFERENCES coopgis.location_reports (id),   -- one decision per report
    registration_no text NOT NULL,
    decision text NOT NULL CHECK (decision IN ('accepted', 'rejected')),
    decided_by text NOT NULL,
    decided_at timestamptz NOT NULL,
    from_lon double precision, from_lat double precision, from_precision text,
    to_lon double precision NOT NULL, to_lat double precision NOT NULL, to_accuracy_m double precision,
    comment text
);
CREATE INDEX location_decisions_registration_no ON coopgis.location_decisions (registration_no);

-- The row version of each reviewed cooperative: a decision commits only on the version it read.
CREATE TABLE coopgis.review_state (
    registration_no text PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0,
    last_decision_id text
);

-- The verified-location overlay: the latest accepted location of each cooperative, with its joins.
CREATE TABLE coopgis.verified_locations (
    registration_no text PRIMARY KEY,
    decision_id text NOT NULL REFERENCES coopgis.location_decisions (id),
    geom geometry(Point, 4326) NOT NULL,
    accuracy_m double precision,
    decided_by text NOT NULL,
    decided_at timestamptz NOT NULL,
    province text, province_name text, county text, county_code text, county_osm bigint,
    deprivation_class text, deprived boolean, border boolean, border_quota_usd bigint
);
CREATE INDEX verified_locations_geom ON coopgis.verified_locations USING gist (geom);

-- Villages that accepted corrections placed (the geocoder learns them).
CREATE TABLE coopgis.learned_villages (
    place_code text PRIMARY KEY,
    geom geometry(Point, 4326) NOT NULL,
    decision_id text NOT NULL REFERENCES coopgis.location_decisions (id),
    learned_at timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens: only the SHA-256 of each token is stored.
CREATE TABLE coopgis.tokens (
    name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    role text NOT NULL CHECK (role IN ('field_officer', 'gis_staff', 'admin')),
    sha256 text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{{64}}$'),
    created timestamptz NOT NULL DEFAULT now()
);

-- What was done to the store, by whom: ingests (replaced or refused), tokens made and revoked, roles granted.
CREATE TABLE coopgis.audit_events (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{{}}'
);

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON coopgis.location_reports
    FOR EACH ROW EXECUTE FUNCTION coopgis.append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON coopgis.location_reports
    FOR EACH STATEMENT EXECUTE FUNCTION coopgis.append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON coopgis.location_decisions
    FOR EACH ROW EXECUTE FUNCTION coopgis.append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON coopgis.location_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION coopgis.append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON coopgis.audit_events
    FOR EACH ROW EXECUTE FUNCTION coopgis.append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON coopgis.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION coopgis.append_only();

-- What a read-only role sees (coopgis db grant-readonly): the served cooperatives with their public
-- columns (coopgis.dataset.PUBLIC_COLUMNS that are stored), verified locations laid over them. Never phone,
-- never the registry's unknown columns (extra), never how each location was found.
CREATE VIEW coopgis_public.cooperatives AS
SELECT c.registration_no, c.name_public AS name, c.kind, c.sector, c.status, c.members, c.jobs, c.women_led,
       c.registered_on, c.registered_on_jalali, c.registered_year,
       COALESCE(v.province, c.province) AS province,
       CASE WHEN v.registration_no IS NULL THEN c.province_name ELSE v.province_name END AS province_name,
       CASE WHEN v.registration_no IS NULL THEN c.county ELSE v.county END AS county,
       CASE WHEN v.registration_no IS NULL THEN c.county_code ELSE v.county_code END AS county_code,
       c.district, c.rural_district, c.place,
       CASE WHEN v.registration_no IS NULL THEN c.precision ELSE 'verified' END AS precision,
       CASE WHEN v.registration_no IS NULL THEN c.confidence ELSE 1.0 END AS confidence,
       CASE WHEN v.registration_no IS NULL THEN c.uncertainty_m ELSE 0 END AS uncertainty_m,
       CASE WHEN v.registration_no IS NULL THEN c.deprivation_class ELSE v.deprivation_class END
           AS deprivation_class,
       CASE WHEN v.registration_no IS NULL THEN c.deprived ELSE v.deprived END AS deprived,
       CASE WHEN v.registration_no IS NULL THEN c.border ELSE v.border END AS border,
       CASE WHEN v.registration_no IS NULL THEN c.border_quota_usd ELSE v.border_quota_usd END AS border_quota_usd,
       c.address_public AS address,
       COALESCE(v.geom, c.geom)::geometry(Point, 4326) AS geom
FROM coopgis.cooperatives c
JOIN coopgis.current_dataset d ON c.dataset_id = d.dataset_id
LEFT JOIN coopgis.verified_locations v ON v.registration_no = c.registration_no;
"""

DOWNGRADE = """
DROP SCHEMA coopgis_public CASCADE;
DROP SCHEMA coopgis CASCADE;
"""


def upgrade() -> None:
    _execute(UPGRADE)


def downgrade() -> None:
    _execute(DOWNGRADE)


def _execute(statements: str) -> None:
    """Run SQL as written, on psycopg's own connection in Alembic's transaction (no parameters, so
    ``%`` and ``:`` are not placeholders)."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    driver.execute(statements)
