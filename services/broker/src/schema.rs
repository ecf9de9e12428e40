//! Diesel schema of the broker database (see migrations/broker).

diesel::table! {
    lookups (id) {
        id -> Text,
        audit_id -> Text,
        user_id -> Text,
        session_id -> Text,
        agency -> Text,
        query_type -> Text,
        subject_id -> Text,
        subject_kind -> Text,
        legal_basis -> Text,
        purpose_code -> Text,
        case_number -> Text,
        remarks -> Nullable<Text>,
        status -> Text,
        requested_at -> Timestamp,
        completed_at -> Nullable<Timestamp>,
        upstream_status -> Nullable<Integer>,
        failure -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        event -> Text,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
    }
}
