DROP TABLE vendor_personnel;
