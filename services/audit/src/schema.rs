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

diesel::table! {
    oversight_head (id) {
        id -> Integer,
        projected_through -> BigInt,
    }
}

diesel::table! {
    oversight_lookups (lookup_id) {
        lookup_id -> Text,
        record_id -> Text,
        sequence -> BigInt,
        agency -> Text,
        unit -> Nullable<Text>,
        user_id -> Text,
        actor_roles -> Text,
        session_id -> Nullable<Text>,
        requested_at -> Timestamp,
        query_type -> Text,
        subject_id -> Text,
        legal_basis -> Text,
        purpose_code -> Text,
        case_number -> Text,
        remarks -> Nullable<Text>,
        proxy_authorization_id -> Nullable<Text>,
        batch_id -> Nullable<Text>,
        outcome -> Nullable<Text>,
        completed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oversight_sessions (session_id) {
        session_id -> Text,
        user_id -> Text,
        display_name -> Nullable<Text>,
        agency -> Nullable<Text>,
        login_at -> Nullable<Timestamp>,
        logout_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    review_reports (id) {
        id -> Text,
        agency -> Text,
        unit -> Text,
        month -> Text,
        reviewer_role -> Text,
        opened_at -> Timestamp,
        due_on -> Date,
        completed_at -> Nullable<Timestamp>,
        overdue_flagged_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    review_entries (report_id, lookup_id) {
        report_id -> Text,
        lookup_id -> Text,
        verdict -> Nullable<Text>,
        note -> Nullable<Text>,
        reviewed_by -> Nullable<Text>,
        reviewed_at -> Nullable<Timestamp>,
        finding_id -> Nullable<Text>,
    }
}

diesel::table! {
    samples (id) {
        id -> Text,
        agency -> Text,
        from_at -> Timestamp,
        to_at -> Timestamp,
        ratio -> Text,
        seed -> Text,
        seed_generated -> Bool,
        population -> BigInt,
        size -> BigInt,
        excluded_own -> BigInt,
        drawn_by -> Text,
        drawn_at -> Timestamp,
    }
}

diesel::table! {
    sample_records (sample_id, position) {
        sample_id -> Text,
        position -> BigInt,
        record_id -> Text,
        stratum -> Text,
        outcome -> Nullable<Text>,
        note -> Nullable<Text>,
        checked_by -> Nullable<Text>,
        checked_at -> Nullable<Timestamp>,
        finding_id -> Nullable<Text>,
    }
}

diesel::table! {
    self_audits (id) {
        id -> Text,
        agency -> Text,
        form -> Text,
        audited_unit -> Nullable<Text>,
        audit_date -> Date,
        status -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        auditor_name -> Nullable<Text>,
        section_chief_name -> Nullable<Text>,
        unit_head_name -> Nullable<Text>,
        completed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    self_audit_items (self_audit_id, item_no) {
        self_audit_id -> Text,
        item_no -> Integer,
        answer -> Nullable<Bool>,
        explanation -> Nullable<Text>,
    }
}

diesel::table! {
    findings (id) {
        id -> Text,
        agency -> Text,
        unit -> Nullable<Text>,
        origin -> Text,
        origin_ref -> Nullable<Text>,
        description -> Text,
        opened_by -> Text,
        opened_at -> Timestamp,
        deadline -> Date,
        status -> Text,
        remediation -> Nullable<Text>,
        recommendation -> Nullable<Text>,
        recommendation_note -> Nullable<Text>,
        closed_by -> Nullable<Text>,
        closed_at -> Nullable<Timestamp>,
        overdue_flagged_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_notifications (id) {
        id -> Text,
        agency -> Text,
        unit -> Nullable<Text>,
        recipient_roles -> Text,
        subject -> Text,
        body -> Text,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        attempts -> Integer,
    }
}

diesel::joinable!(review_entries -> review_reports (report_id));
diesel::joinable!(sample_records -> samples (sample_id));
diesel::joinable!(self_audit_items -> self_audits (self_audit_id));
diesel::allow_tables_to_appear_in_same_query!(
    oversight_lookups,
    oversight_sessions,
    review_reports,
    review_entries,
    samples,
    sample_records,
    self_audits,
    self_audit_items,
    findings,
    audit_notifications,
);
