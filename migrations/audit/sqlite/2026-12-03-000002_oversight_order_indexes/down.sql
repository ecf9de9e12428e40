DROP INDEX oversight_lookups_time_idx;
DROP INDEX oversight_lookups_unit_idx;
DROP INDEX oversight_lookups_agency_idx;
CREATE INDEX oversight_lookups_agency_idx ON oversight_lookups (agency, requested_at);
CREATE INDEX oversight_lookups_unit_idx ON oversight_lookups (agency, unit, requested_at);
