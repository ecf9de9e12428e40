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
