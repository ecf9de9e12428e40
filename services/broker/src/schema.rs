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
        proxy_authorization_id -> Nullable<Text>,
        on_behalf_of_user_id -> Nullable<Text>,
        supervisor_approval_id -> Nullable<Text>,
        batch_id -> Nullable<Text>,
    }
}

diesel::table! {
    batches (id) {
        id -> Text,
        agency -> Text,
        user_id -> Text,
        session_id -> Text,
        query_type -> Text,
        legal_basis -> Text,
        purpose_code -> Text,
        case_number -> Text,
        remarks -> Nullable<Text>,
        supervisor_approval_id -> Nullable<Text>,
        status -> Text,
        total -> Integer,
        done -> Integer,
        succeeded -> Integer,
        failed -> Integer,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        failure -> Nullable<Text>,
    }
}

diesel::table! {
    batch_items (batch_id, position) {
        batch_id -> Text,
        position -> Integer,
        subject_id -> Text,
        status -> Text,
        lookup_id -> Nullable<Text>,
        result -> Nullable<Text>,
        failure -> Nullable<Text>,
        completed_at -> Nullable<Timestamp>,
    }
}

// The outbox table is immilink_shared::outbox::outbox (the same in every service).

// Paperwork (migrations/broker/*/2026-11-23-000002_paperwork): R-QRY-06, R-QRY-10, R-QRY-09.

diesel::table! {
    proxy_authorizations (id) {
        id -> Text,
        agency -> Text,
        grantor_user_id -> Text,
        grantor_name -> Text,
        grantee_user_id -> Text,
        grantee_name -> Text,
        case_number -> Text,
        query_types -> Text,
        valid_from -> Timestamp,
        valid_until -> Timestamp,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
        revocation_reason -> Nullable<Text>,
    }
}

diesel::table! {
    purpose_approvals (id) {
        id -> Text,
        agency -> Text,
        unit -> Text,
        requester_user_id -> Text,
        purpose_code -> Text,
        case_number -> Text,
        business_description -> Text,
        status -> Text,
        requested_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decided_by -> Nullable<Text>,
        decision_reason -> Nullable<Text>,
        valid_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    doubt_queries (id) {
        id -> Text,
        agency -> Text,
        filed_by -> Text,
        filer_unit -> Nullable<Text>,
        query_type -> Text,
        legal_basis -> Text,
        purpose_code -> Text,
        case_number -> Text,
        purpose_approval_id -> Nullable<Text>,
        requester_name -> Text,
        requester_title -> Text,
        requester_phone -> Text,
        requester_fax -> Nullable<Text>,
        subject_nationality_kind -> Text,
        subject_name_zh -> Nullable<Text>,
        subject_name_en -> Nullable<Text>,
        subject_sex -> Nullable<Text>,
        subject_birth_date -> Nullable<Date>,
        subject_national_id -> Nullable<Text>,
        subject_passport_number -> Nullable<Text>,
        subject_arc_number -> Nullable<Text>,
        subject_phone -> Nullable<Text>,
        reason -> Text,
        attachments -> Text,
        receiving_unit -> Text,
        faxed_at -> Timestamp,
        due_on -> Date,
        lookup_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    doubt_query_follow_ups (doubt_query_id) {
        doubt_query_id -> Text,
        document_number -> Text,
        sent_on -> Date,
        late -> Bool,
        recorded_at -> Timestamp,
        recorded_by -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(doubt_queries, doubt_query_follow_ups);
