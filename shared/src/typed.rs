//! Typed states and ids, stored as text. A state (a batch's status, an account's) is an enum declared
//! with [`text_enum!`]: one variant per state, each with the text the database and the API carry, so
//! no state is ever a bare string literal in code. An id that could be confused with another (a user
//! id, an agency code) is a newtype declared with [`text_id!`], so one cannot be passed where the
//! other is expected. Both read and write through diesel as `Text` on every backend (PostgreSQL,
//! SQLite and the multi-backend connection), serialise as plain JSON strings, and document themselves
//! as strings in the OpenAPI documents. A leaf module: it depends on nothing else in shared.

/// A stored text that is none of an enum's states: the row was written by something else, or
/// corrupted. Reading it fails as a database error, never silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a known {what}")]
pub struct UnknownText {
    pub what: &'static str,
    pub value: String,
}

/// Declares an enum of states stored as text. Each variant names its text:
///
/// ```ignore
/// text_enum! {
///     /// A bulk job's life.
///     pub enum BatchStatus {
///         Queued = "queued",
///         Running = "running",
///     }
/// }
/// ```
///
/// It derives what a state needs (copy, equality, hashing, serde as the text, an OpenAPI string
/// enum) and implements `as_str`, `ALL`, `FromStr`, `Display` and diesel's `Text` on every backend.
/// The calling crate needs `serde`, `utoipa` and `diesel` (every service has them).
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            // `tt`, not `literal`: utoipa does not see a `literal` fragment in `#[serde(rename = …)]`
            // and would document the variant's name instead of its text.
            $( $(#[$vmeta:meta])* $variant:ident = $text:tt ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored and sent for this state.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::typed::UnknownText;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::typed::UnknownText { what: stringify!($name), value: other.to_owned() }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::__text_sql!($name, |value| value.as_str(), |text| text.parse::<$name>());
    };
}

/// Declares a newtype id stored and sent as text:
///
/// ```ignore
/// text_id! {
///     /// A user's id (UUIDv7).
///     pub struct UserId;
/// }
/// ```
///
/// `UserId::new(text)`, `as_str()`, `into_inner()`, `Display`, `AsRef<str>`, serde as a plain
/// string, an OpenAPI string, and diesel's `Text` on every backend. Whatever checks an id's form
/// belongs to the code that parses it from input; the newtype says what the text is.
#[macro_export]
macro_rules! text_id {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis struct $name(String);

        impl $name {
            pub fn new(text: impl Into<String>) -> Self {
                Self(text.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        $crate::__text_sql!($name, |value| value.0.as_str(), |text| Ok::<$name, ::std::convert::Infallible>($name(text)));
    };
}

/// Diesel `Text` for a type given how to show it as `&str` and how to read it back from a `String`:
/// generic over the backend, so it holds for PostgreSQL, SQLite and the multi-backend connection.
#[doc(hidden)]
#[macro_export]
macro_rules! __text_sql {
    ($name:ident, |$value:ident| $to_text:expr, |$text:ident| $from_text:expr) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
                let $value = self;
                let text: &'b str = $to_text;
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(text, out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let $text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(bytes)?;
                $from_text.map_err(|err| err.into())
            }
        }
    };
}

text_id! {
    /// A user's id (UUIDv7), as identity issues it and tokens carry it (`sub`).
    pub struct UserId;
}

text_id! {
    /// An agency's code, e.g. `TPE-SW`.
    pub struct AgencyCode;
}

text_id! {
    /// A unit's id within its agency.
    pub struct UnitId;
}

text_id! {
    /// A login session's id, as tokens carry it (`sid`).
    pub struct SessionId;
}

text_id! {
    /// The case a lookup or a paper serves (案號), as the caller declared it.
    pub struct CaseNumber;
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use crate::db::{Db, DbSettings, Migrations};

    text_enum! {
        /// A test lifecycle.
        pub enum Light {
            Red = "red",
            /// Between the two.
            Amber = "amber",
            Green = "green",
        }
    }

    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = Text)]
        light: Light,
        #[diesel(sql_type = Text)]
        owner: super::UserId,
    }

    #[test]
    fn states_are_their_text_everywhere() {
        assert_eq!(Light::Amber.as_str(), "amber");
        assert_eq!("green".parse::<Light>(), Ok(Light::Green));
        let err = "blue".parse::<Light>().unwrap_err();
        assert_eq!((err.what, err.value.as_str()), ("Light", "blue"));
        assert_eq!(serde_json::to_string(&Light::Red).unwrap(), "\"red\"");
        assert_eq!(serde_json::from_str::<Light>("\"amber\"").unwrap(), Light::Amber);
        assert!(serde_json::from_str::<Light>("\"Amber\"").is_err());
        assert_eq!(Light::ALL, &[Light::Red, Light::Amber, Light::Green]);
        assert_eq!(Light::Green.to_string(), "green");
    }

    /// The OpenAPI documents list the texts the API carries, not the variants' names.
    #[test]
    fn states_are_documented_as_their_text() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Light::schema()).unwrap();
        assert_eq!(schema["enum"], serde_json::json!(["red", "amber", "green"]), "{schema}");
    }

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let id = super::UserId::new("0193-a");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0193-a\"");
        assert_eq!(serde_json::from_str::<super::UserId>("\"0193-a\"").unwrap(), id);
        assert!(id == "0193-a");
    }

    /// Written and read back through the multi-backend connection, on SQLite or (with
    /// `TEST_DATABASE_URL`) PostgreSQL; an unknown stored text is an error, not a default.
    #[test]
    fn states_and_ids_round_trip_through_the_database() {
        let test_db = crate::testing::TestDb::new();
        let migrations = Migrations {
            postgres: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
            sqlite: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
        };
        let db = Db::connect(&DbSettings::new(test_db.url()), &migrations).unwrap();
        let mut conn = db.get().unwrap();
        diesel::sql_query("CREATE TABLE lights (light TEXT NOT NULL, owner TEXT NOT NULL)").execute(&mut conn).unwrap();
        diesel::sql_query("INSERT INTO lights (light, owner) VALUES ($1, $2)")
            .bind::<Text, _>(Light::Amber)
            .bind::<Text, _>(super::UserId::new("u-1"))
            .execute(&mut conn)
            .unwrap();
        let stored: Stored = diesel::sql_query("SELECT light, owner FROM lights").get_result(&mut conn).unwrap();
        assert_eq!((stored.light, stored.owner.as_str()), (Light::Amber, "u-1"));
        diesel::sql_query("UPDATE lights SET light = 'blue'").execute(&mut conn).unwrap();
        let unknown = diesel::sql_query("SELECT light, owner FROM lights").get_result::<Stored>(&mut conn);
        assert!(unknown.is_err(), "an unknown state is refused when read");
    }
}
