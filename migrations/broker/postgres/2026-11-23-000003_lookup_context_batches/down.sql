DROP TABLE batch_items;
DROP FUNCTION immilink_results_read_only;
DROP TABLE batches;
ALTER TABLE lookups DROP COLUMN batch_id;
ALTER TABLE lookups DROP COLUMN supervisor_approval_id;
ALTER TABLE lookups DROP COLUMN on_behalf_of_user_id;
ALTER TABLE lookups DROP COLUMN proxy_authorization_id;
