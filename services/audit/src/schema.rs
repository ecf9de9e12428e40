//! Diesel schema of the audit database (see migrations/audit).

diesel::table! {
    audit_chain_head (id) {
        id -> Integer,
        next_sequence -> BigInt,
        last_hash -> Text,
    }
}

diesel::table! {
    audit_records (sequence) {
        sequence -> BigInt,
        id -> Text,
        kind -> Text,
        occurred_at -> Timestamp,
        recorded_at -> Timestamp,
        source -> Text,
        actor_user_id -> Nullable<Text>,
        agency -> Nullable<Text>,
        correlation_id -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        payload -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}
