DROP TABLE doubt_query_follow_ups;
DROP TABLE doubt_queries;
DROP TABLE purpose_approvals;
DROP TABLE proxy_authorizations;
