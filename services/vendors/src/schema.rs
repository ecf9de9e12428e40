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
    }
}

diesel::joinable!(vendor_personnel -> vendors (vendor_id));

diesel::allow_tables_to_appear_in_same_query!(vendors, vendor_personnel);
