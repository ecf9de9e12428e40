//! Diesel schema of the identity database (see migrations/identity).

diesel::table! {
    agencies (id) {
        id -> Text,
        code -> Text,
        name -> Text,
        kind -> Text,
        created_at -> Timestamp,
        requires_head_approval -> Bool,
        is_public -> Bool,
        competent_authority_id -> Nullable<Text>,
    }
}

diesel::table! {
    units (id) {
        id -> Text,
        agency_id -> Text,
        name -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        agency_id -> Text,
        unit_id -> Nullable<Text>,
        username -> Text,
        display_name -> Text,
        password_hash -> Text,
        certificate_serial -> Text,
        status -> Text,
        created_at -> Timestamp,
        national_id -> Nullable<Text>,
        email -> Nullable<Text>,
        status_reason -> Nullable<Text>,
        status_changed_at -> Nullable<Timestamp>,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        grants_suspended_at -> Nullable<Timestamp>,
        grants_suspended_reason -> Nullable<Text>,
    }
}

diesel::table! {
    user_roles (user_id, role) {
        user_id -> Text,
        role -> Text,
    }
}

diesel::table! {
    user_ips (user_id, ip) {
        user_id -> Text,
        ip -> Text,
    }
}

diesel::table! {
    user_grants (user_id, query_type, purpose_code) {
        user_id -> Text,
        query_type -> Text,
        purpose_code -> Text,
    }
}

diesel::table! {
    agency_links (id) {
        id -> Text,
        agency_id -> Text,
        status -> Text,
        valid_from -> Timestamp,
        valid_until -> Timestamp,
        created_at -> Timestamp,
        sponsor_agency_id -> Nullable<Text>,
        status_cause -> Nullable<Text>,
        status_reason -> Nullable<Text>,
        status_changed_at -> Nullable<Timestamp>,
        suspended_at -> Nullable<Timestamp>,
        review_due_on -> Nullable<Date>,
        review_notified_on -> Nullable<Date>,
        termination_date -> Nullable<Date>,
        termination_noticed_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        dormant_notified_at -> Nullable<Timestamp>,
        dormancy_confirmed_at -> Nullable<Timestamp>,
        activated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    agency_link_items (link_id, legal_basis, purpose_code, query_type) {
        link_id -> Text,
        legal_basis -> Text,
        purpose_code -> Text,
        query_type -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        ip -> Text,
        user_agent -> Text,
        login_at -> Timestamp,
        last_seen_at -> Timestamp,
        logout_at -> Nullable<Timestamp>,
        end_reason -> Nullable<Text>,
    }
}

diesel::table! {
    account_applications (id) {
        id -> Text,
        agency_id -> Text,
        unit_id -> Text,
        username -> Text,
        display_name -> Text,
        national_id -> Text,
        email -> Text,
        password_hash -> Text,
        certificate_serial -> Text,
        ips -> Text,
        legal_basis -> Text,
        business_handled -> Text,
        requested_grants -> Text,
        granted -> Nullable<Text>,
        status -> Text,
        user_id -> Nullable<Text>,
        nia_reference -> Nullable<Text>,
        submitted_ip -> Text,
        submitted_at -> Timestamp,
        updated_at -> Timestamp,
        role -> Text,
    }
}

diesel::table! {
    application_reviews (id) {
        id -> Text,
        application_id -> Text,
        step -> Text,
        reviewer_id -> Nullable<Text>,
        reviewer_name -> Text,
        decision -> Text,
        reason -> Text,
        decided_at -> Timestamp,
    }
}

diesel::table! {
    account_events (id) {
        id -> Text,
        user_id -> Text,
        agency_id -> Text,
        kind -> Text,
        reason -> Text,
        actor_id -> Nullable<Text>,
        effective_date -> Date,
        created_at -> Timestamp,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    link_applications (id) {
        id -> Text,
        link_id -> Text,
        agency_id -> Text,
        sponsor_agency_id -> Nullable<Text>,
        kind -> Text,
        status -> Text,
        form -> Text,
        submitted_by -> Text,
        submitted_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    link_application_items (application_id, legal_basis, purpose_code, query_type) {
        application_id -> Text,
        legal_basis -> Text,
        purpose_code -> Text,
        query_type -> Text,
        decision -> Text,
        reason -> Nullable<Text>,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    link_transitions (id) {
        id -> Text,
        link_id -> Text,
        from_status -> Nullable<Text>,
        to_status -> Text,
        cause -> Text,
        reason -> Text,
        actor_id -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    anomaly_notices (id) {
        id -> Text,
        link_id -> Text,
        agency_id -> Text,
        finding -> Text,
        deadline -> Date,
        status -> Text,
        issued_by -> Text,
        issued_at -> Timestamp,
        explanation -> Nullable<Text>,
        remediation -> Nullable<Text>,
        remediated_by -> Nullable<Text>,
        remediated_at -> Nullable<Timestamp>,
        overdue_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    link_resumption_requests (id) {
        id -> Text,
        link_id -> Text,
        remediation -> Text,
        status -> Text,
        requested_by -> Text,
        requested_at -> Timestamp,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        decision_reason -> Nullable<Text>,
    }
}

diesel::table! {
    personnel_messages (id) {
        id -> Text,
        kind -> Text,
        accounts -> Integer,
        received_at -> Timestamp,
    }
}

diesel::joinable!(units -> agencies (agency_id));
diesel::joinable!(users -> agencies (agency_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_ips -> users (user_id));
diesel::joinable!(user_grants -> users (user_id));
diesel::joinable!(agency_links -> agencies (agency_id));
diesel::joinable!(agency_link_items -> agency_links (link_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(link_applications -> agency_links (link_id));
diesel::joinable!(link_application_items -> link_applications (application_id));
diesel::joinable!(link_transitions -> agency_links (link_id));
diesel::joinable!(anomaly_notices -> agency_links (link_id));
diesel::joinable!(link_resumption_requests -> agency_links (link_id));
diesel::joinable!(account_applications -> agencies (agency_id));
diesel::joinable!(application_reviews -> account_applications (application_id));
diesel::joinable!(account_events -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    agencies,
    units,
    users,
    user_roles,
    user_ips,
    user_grants,
    agency_links,
    agency_link_items,
    sessions,
    account_applications,
    application_reviews,
    account_events,
    notifications,
    link_applications,
    link_application_items,
    link_transitions,
    anomaly_notices,
    link_resumption_requests,
    personnel_messages,
);
