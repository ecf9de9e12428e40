//! Diesel schema of the vendors database (see migrations/vendors).

diesel::table! {
    vendors (id) {
        id -> Text,
        agency -> Text,
        name -> Text,
        business_number -> Text,
        contact_email -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    vendor_personnel (id) {
        id -> Text,
        vendor_id -> Text,
        agency -> Text,
        national_id -> Text,
        name -> Text,
        job_title -> Nullable<Text>,
        status -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        departed_at -> Nullable<Timestamp>,
        contract_id -> Nullable<Text>,
        suitability_status -> Nullable<Text>,
        suitability_checked_on -> Nullable<Date>,
        suitability_checker -> Nullable<Text>,
        suitability_recorded_by -> Nullable<Text>,
        suitability_recorded_at -> Nullable<Timestamp>,
        agreement_signed_on -> Nullable<Date>,
        agreement_reference -> Nullable<Text>,
        agreement_filed_by -> Nullable<Text>,
        agreement_filed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    vendor_contracts (id) {
        id -> Text,
        vendor_id -> Text,
        agency -> Text,
        title -> Text,
        scope -> Text,
        starts_on -> Date,
        ends_on -> Date,
        custom_development -> Bool,
        status -> Text,
        certificate_reference -> Nullable<Text>,
        certificate_issuer -> Nullable<Text>,
        certificate_issued_on -> Nullable<Date>,
        certificate_filed_by -> Nullable<Text>,
        certificate_filed_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        activated_by -> Nullable<Text>,
        activated_at -> Nullable<Timestamp>,
        ended_by -> Nullable<Text>,
        ended_at -> Nullable<Timestamp>,
        end_reason -> Nullable<Text>,
    }
}

diesel::table! {
    /// Messages to identity (R-VEN-06, R-VEN-08), delivered by `identity_relay`.
    identity_messages (id) {
        id -> Text,
        kind -> Text,
        national_id -> Text,
        agency -> Text,
        vendor_id -> Text,
        person_id -> Text,
        reason -> Text,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        rejected_at -> Nullable<Timestamp>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    /// Dedicated machines (R-VEN-07).
    vendor_devices (id) {
        id -> Text,
        vendor_id -> Text,
        contract_id -> Text,
        agency -> Text,
        asset_tag -> Text,
        serial_number -> Text,
        description -> Text,
        status -> Text,
        offline -> Nullable<Bool>,
        licensed_software -> Nullable<Text>,
        attested_by -> Nullable<Text>,
        attested_at -> Nullable<Timestamp>,
        attestation_due_on -> Date,
        overdue_flagged_at -> Nullable<Timestamp>,
        registered_by -> Text,
        registered_at -> Timestamp,
        retired_by -> Nullable<Text>,
        retired_at -> Nullable<Timestamp>,
        retirement_reason -> Nullable<Text>,
    }
}

diesel::table! {
    /// Incident reports (R-VEN-03).
    vendor_incidents (id) {
        id -> Text,
        vendor_id -> Text,
        agency -> Text,
        contract_id -> Nullable<Text>,
        occurred_at -> Timestamp,
        learned_at -> Timestamp,
        reported_at -> Timestamp,
        description -> Text,
        measures -> Text,
        late -> Bool,
        report_limit_minutes -> BigInt,
        reported_by -> Text,
    }
}

diesel::table! {
    /// Audits of vendors (R-VEN-05).
    vendor_audits (id) {
        id -> Text,
        vendor_id -> Text,
        agency -> Text,
        audited_on -> Date,
        auditor -> Text,
        scope -> Text,
        summary -> Text,
        recorded_by -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    /// Findings of vendor audits, tracked to closure (R-VEN-05).
    vendor_findings (id) {
        id -> Text,
        audit_id -> Text,
        vendor_id -> Text,
        agency -> Text,
        description -> Text,
        deadline -> Date,
        status -> Text,
        remediation -> Nullable<Text>,
        remediated_by -> Nullable<Text>,
        remediated_at -> Nullable<Timestamp>,
        closure_note -> Nullable<Text>,
        closed_by -> Nullable<Text>,
        closed_at -> Nullable<Timestamp>,
        overdue_flagged_at -> Nullable<Timestamp>,
        opened_at -> Timestamp,
    }
}

diesel::joinable!(vendor_personnel -> vendors (vendor_id));
diesel::joinable!(vendor_contracts -> vendors (vendor_id));
diesel::joinable!(vendor_personnel -> vendor_contracts (contract_id));

diesel::joinable!(vendor_devices -> vendor_contracts (contract_id));
diesel::joinable!(vendor_findings -> vendor_audits (audit_id));

diesel::allow_tables_to_appear_in_same_query!(
    vendors,
    vendor_personnel,
    vendor_contracts,
    identity_messages,
    vendor_devices,
    vendor_incidents,
    vendor_audits,
    vendor_findings,
);
