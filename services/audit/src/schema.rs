//! Diesel schema of the audit database (see migrations/audit).

diesel::table! {
    audit_chain_head (id) {
        id -> Integer,
        next_sequence -> BigInt,
        last_hash -> Text,
        tree_size -> BigInt,
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
        hash_scheme -> SmallInt,
        disposed_at -> Nullable<Timestamp>,
        unit -> Nullable<Text>,
    }
}

diesel::table! {
    audit_tree_hashes (hash_index) {
        hash_index -> BigInt,
        hash -> Binary,
    }
}

diesel::table! {
    audit_checkpoints (tree_size) {
        tree_size -> BigInt,
        root_hash -> Text,
        note -> Text,
        issued_at -> Timestamp,
        witnessed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_legal_holds (id) {
        id -> Text,
        agency -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        case_number -> Nullable<Text>,
        from_sequence -> Nullable<BigInt>,
        to_sequence -> Nullable<BigInt>,
        reason -> Text,
        placed_by -> Text,
        placed_at -> Timestamp,
        lifted_by -> Nullable<Text>,
        lifted_at -> Nullable<Timestamp>,
        lift_reason -> Nullable<Text>,
    }
}
