//! What a user may look up: the (legal basis, purpose, query type) tuples approved on the agency's
//! link, while [`links::standing`] lets it be used, AND granted to the user as (query type, purpose)
//! (R-QRY-02), while the user's own standing lets their grants count ([`contractors::standing`]:
//! not while they are suspended for a contractor conflict, and never for a `vendor_staff` account,
//! R-VEN-08).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use immilink_shared::db::DbConn;

use super::contractors::{self, OwnStanding};
use super::links::{self, LinkRefusal, LinkRow, Standing};
use super::{AgencyCode, AgencyId, IdentityError, UnitId, UserId};
use crate::schema::{agencies, agency_link_items, units, user_grants, user_roles, users};

/// One permitted lookup declaration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
}

/// What an agency's link allows the caller now, as the broker needs it: why this caller's lookups
/// cannot run now (if they cannot), and the query types the link carries (to tell an item the link
/// lacks, R-LINK-03, from one the user lacks, R-QRY-02).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkRights {
    /// Why this caller's lookups cannot run now: the agency's link (R-LINK-02..12), or the caller's
    /// own standing (R-VEN-08: grants suspended for a contractor conflict). `None`: they may run,
    /// within `permissions`.
    pub refusal: Option<LinkRefusal>,
    pub query_types: Vec<String>,
}

/// The user's permissions and their agency's link rights. Permissions are empty whenever the
/// caller's own grants are suspended ([`contractors::standing`], the refusal names R-VEN-08, checked
/// first) or the link cannot be used ([`links::standing`] is the one rule of that).
pub fn lookup_rights(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    agency_id: &AgencyId,
) -> Result<(Vec<Permission>, LinkRights, Option<LinkRow>), IdentityError> {
    let own = contractors::standing(conn, user_id)?;
    if let OwnStanding::Suspended(refusal) = own {
        return Ok((Vec::new(), LinkRights { refusal: Some(refusal), query_types: Vec::new() }, None));
    }
    let (link, query_types) = match links::standing(conn, now, agency_id)? {
        Standing::Usable { link, query_types } => (link, query_types),
        Standing::Refused(refusal) => {
            return Ok((Vec::new(), LinkRights { refusal: Some(refusal), query_types: Vec::new() }, None))
        }
    };
    if own == OwnStanding::VendorStaff {
        // No lookup can run, so none uses the link (R-LINK-10).
        return Ok((Vec::new(), LinkRights { refusal: None, query_types }, None));
    }
    let granted: BTreeSet<(String, String)> = user_grants::table
        .filter(user_grants::user_id.eq(user_id))
        .select((user_grants::query_type, user_grants::purpose_code))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let approved: Vec<(String, String, String)> = agency_link_items::table
        .filter(agency_link_items::link_id.eq(&link.id))
        .select((agency_link_items::legal_basis, agency_link_items::purpose_code, agency_link_items::query_type))
        .load(conn)?;
    let permissions: BTreeSet<Permission> = approved
        .into_iter()
        .filter(|(_, purpose, query_type)| granted.contains(&(query_type.clone(), purpose.clone())))
        .map(|(legal_basis, purpose_code, query_type)| Permission { legal_basis, purpose_code, query_type })
        .collect();
    Ok((permissions.into_iter().collect(), LinkRights { refusal: None, query_types }, Some(link)))
}

/// The (legal basis, purpose, query type) tuples approved on the agency's usable link AND granted
/// to the user (R-QRY-02).
pub fn permitted(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    agency_id: &AgencyId,
) -> Result<Vec<Permission>, IdentityError> {
    Ok(lookup_rights(conn, now, user_id, agency_id)?.0)
}

/// The caller as `/v1/me` shows it.
#[derive(Debug, Clone)]
pub struct Profile {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub agency: AgencyRef,
    pub unit: Option<UnitRef>,
    pub roles: Vec<String>,
    /// Every (legal basis, purpose, query type) the caller may declare on a lookup.
    pub permissions: Vec<Permission>,
    /// The distinct query types among `permissions`.
    pub query_types: Vec<String>,
    /// The distinct purposes among `permissions`.
    pub purposes: Vec<String>,
    /// The agency's link now.
    pub link: LinkRights,
    /// The usable link the permissions come from (to record its use, R-LINK-10).
    pub link_in_use: Option<LinkRow>,
}

#[derive(Debug, Clone)]
pub struct AgencyRef {
    pub id: AgencyId,
    pub code: AgencyCode,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct UnitRef {
    pub id: UnitId,
    pub name: String,
}

pub fn profile(conn: &mut DbConn, now: DateTime<Utc>, user_id: &UserId) -> Result<Profile, IdentityError> {
    type Row = (String, String, Option<UnitId>, AgencyId, AgencyCode, String);
    let (username, display_name, unit_id, agency_id, agency_code, agency_name): Row = users::table
        .inner_join(agencies::table)
        .filter(users::id.eq(user_id))
        .select((users::username, users::display_name, users::unit_id, agencies::id, agencies::code, agencies::name))
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the user"))?;
    let unit = match unit_id {
        Some(id) => units::table
            .filter(units::id.eq(&id))
            .select(units::name)
            .first::<String>(conn)
            .optional()?
            .map(|name| UnitRef { id, name }),
        None => None,
    };
    let roles = user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .select(user_roles::role)
        .order(user_roles::role)
        .load(conn)?;
    let (permissions, link, link_in_use) = lookup_rights(conn, now, user_id, &agency_id)?;
    let distinct = |pick: fn(&Permission) -> &String| -> Vec<String> {
        permissions.iter().map(pick).cloned().collect::<BTreeSet<_>>().into_iter().collect()
    };
    Ok(Profile {
        user_id: user_id.clone(),
        username,
        display_name,
        agency: AgencyRef { id: agency_id, code: agency_code, name: agency_name },
        unit,
        roles,
        query_types: distinct(|p| &p.query_type),
        purposes: distinct(|p| &p.purpose_code),
        permissions,
        link,
        link_in_use,
    })
}
