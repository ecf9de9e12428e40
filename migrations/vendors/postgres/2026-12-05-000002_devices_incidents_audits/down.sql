DROP TABLE vendor_findings;
DROP TABLE vendor_audits;
DROP TABLE vendor_incidents;
DROP TABLE vendor_devices;
