-- The query record table, the export and the monthly review read lookups a page at a time in the
-- order (requested_at, lookup_id): indexes in exactly that order let each page start at its cursor
-- and stop after its limit, instead of sorting the whole rest of the year for every page.
DROP INDEX oversight_lookups_agency_idx;
DROP INDEX oversight_lookups_unit_idx;
CREATE INDEX oversight_lookups_agency_idx ON oversight_lookups (agency, requested_at, lookup_id);
CREATE INDEX oversight_lookups_unit_idx ON oversight_lookups (agency, unit, requested_at, lookup_id);
CREATE INDEX oversight_lookups_time_idx ON oversight_lookups (requested_at, lookup_id);
