//! The application and change form of seed 003 (各機關應用移民資訊申請暨異動書) and the immigration
//! agency's decision on each requested item. A first application creates a pending link; a change
//! application (R-LINK-05) re-files the whole form, with the agency's latest management rules, for a
//! live link. The link carries exactly the items approved on its latest decided application
//! (R-LINK-03). The form is stored as filed, as JSON, and printed from that (see `documents`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::catalogue::{self, AgencyKind, QueryType};
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::{text_enum, text_id};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::accounts::Actor;
use super::links::{self, LinkCause, LinkDetail, LinkId, LinkRow, LinkStatus, NiaDecision};
use super::{new_id, notifications, AgencyCode, AgencyId, IdentityError, UserId};
use crate::schema::{agencies, agency_link_items, agency_links, link_application_items, link_applications};

text_id! {
    /// A link application's id (UUIDv7).
    pub struct LinkApplicationId;
}

/// Longest free text on the form.
pub const MAX_TEXT: usize = 2000;
/// Most items one application may request: every legal basis × purpose × query type of a kind fits.
pub const MAX_ITEMS: usize = 1000;
/// Most legal bases one application may declare.
pub const MAX_LEGAL_BASES: usize = 50;
/// Longest usage period one application may ask for.
pub const MAX_USAGE_YEARS: u32 = 5;

text_enum! {
    /// 首次申請 or 異動.
    pub enum ApplicationKind {
        First = "first",
        Change = "change",
    }
}

text_enum! {
    /// What a change application changes (form §3, §4, §6; R-LINK-05).
    pub enum ChangeKind {
        /// 變更單位主管.
        Supervisor = "supervisor",
        /// 變更承辦人員.
        Handler = "handler",
        /// 資料提供方式 變更.
        Provisioning = "provisioning",
        /// 變更本機關應用移民資訊管理規定 (a major change).
        Rules = "rules",
        /// 資料利用期間 展延 (R-LINK-12).
        Extension = "extension",
        /// The requested items change.
        Items = "items",
        /// 申請停止資料提供: no further need (R-LINK-05, R-LINK-09). The link stops at once.
        Stop = "stop",
    }
}

text_enum! {
    /// How a file transfer is made (form §3, R-LINK-01).
    pub enum TransferMethod {
        Email = "email",
        Sftp = "sftp",
        Other = "other",
    }
}

text_enum! {
    /// The eight items an agency's management rules must cover (003 pt 4, R-LINK-04).
    pub enum RulesItem {
        /// (一) 使用移民資料之目的（使用範圍、頻率及欄位之必要性）.
        PurposeScope = "purpose_scope",
        /// (二) 定期督考稽核及配合移民署稽核之程序.
        AuditProcedure = "audit_procedure",
        /// (三) 使用者查詢資料之作業程序.
        QueryProcedure = "query_procedure",
        /// (四) 個人資料安全維護措施及資料安全管制.
        SecurityMeasures = "security_measures",
        /// (五) 委外廠商使用介接資料之程序、管理及罰則.
        ContractorProcedure = "contractor_procedure",
        /// (六) 違反個資法致當事人權益受損時機關之責任.
        AgencyLiability = "agency_liability",
        /// (七) 使用者違反管理規定之責任.
        UserLiability = "user_liability",
        /// (八) 系統帳號權限異動之作業程序.
        AccountPermissionChanges = "account_permission_changes",
    }
}

impl RulesItem {
    /// The item as 003 pt 4 words it.
    pub fn name_zh(self) -> &'static str {
        use RulesItem::*;
        match self {
            PurposeScope => "使用移民資料之目的（包含盤點使用範圍、使用頻率及使用欄位均合於目的之必要性）",
            AuditProcedure => "定期督考稽核及配合移民署實施稽核作業之具體程序",
            QueryProcedure => "使用者查詢資料之具體作業程序",
            SecurityMeasures => "處理個人資料之安全維護措施及資料安全管制作業",
            ContractorProcedure => "委外廠商使用介接資料之具體程序、管理作業及相關罰則",
            AgencyLiability => "違反個人資料保護法致當事人權益受損時連結機關應負之責任",
            UserLiability => "使用者違反管理規定時應負之責任",
            AccountPermissionChanges => "系統帳號權限異動之作業程序",
        }
    }
}

text_enum! {
    /// The immigration agency's decision on one requested item.
    pub enum ItemDecision {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
}

text_enum! {
    /// Where an application stands.
    pub enum LinkApplicationStatus {
        /// Items wait for the immigration agency's decision.
        UnderReview = "under_review",
        /// Every item is decided (or the application was a stop request).
        Decided = "decided",
    }
}

/// One requested item: a query type, under a declared legal basis, for a purpose (R-LINK-03).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestedItem {
    pub query_type: String,
    pub legal_basis: String,
    pub purpose_code: String,
}

/// A file transfer: the method and the designated account or IP address (form §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTransfer {
    pub method: TransferMethod,
    /// What "other" is, when the method is other.
    pub method_other: Option<String>,
    pub designated_account_or_ip: String,
}

/// How the data is provided: online query and/or file transfer (R-LINK-01).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioning {
    pub online_query: bool,
    /// What the online query is used through (the system or the workstation), as the form asks.
    pub online_query_detail: Option<String>,
    pub file_transfer: Option<FileTransfer>,
}

/// A supervisor or handler on the form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub title: String,
    pub phone: String,
    pub email: String,
}

/// Where one of the eight items is covered in the attached rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesCoverage {
    pub item: RulesItem,
    /// The article or section that covers it, e.g. 第五點.
    pub section: String,
}

/// The agency's own management rules, attached to every application (R-LINK-04, R-LINK-05).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagementRules {
    pub title: String,
    pub version: String,
    pub coverage: Vec<RulesCoverage>,
}

/// The whole form, as filed and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkForm {
    /// 取得資料之法令依據: catalogue codes.
    pub legal_bases: Vec<String>,
    /// 使用目的, in the agency's words.
    pub purpose: String,
    /// 申請項目.
    pub items: Vec<RequestedItem>,
    /// 資料使用部門.
    pub using_department: String,
    /// 資料提供方式.
    pub provisioning: Provisioning,
    /// 資料利用期間, Taipei dates, `until` inclusive.
    pub usage_from: NaiveDate,
    pub usage_until: NaiveDate,
    /// 特定目的消失或期限屆滿時之處理.
    pub handling_on_end: String,
    /// 單位主管 and 承辦人員.
    pub supervisor: Contact,
    pub handler: Contact,
    pub management_rules: ManagementRules,
    /// What a change application changes; empty on a first application.
    pub changes: Vec<ChangeKind>,
}

/// An application with its items and their decisions.
#[derive(Debug, Clone)]
pub struct LinkApplication {
    pub id: LinkApplicationId,
    pub link_id: LinkId,
    pub agency_id: AgencyId,
    pub sponsor_agency_id: Option<AgencyId>,
    pub kind: ApplicationKind,
    pub status: LinkApplicationStatus,
    pub form: LinkForm,
    pub submitted_by: UserId,
    pub submitted_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
    pub items: Vec<ItemRecord>,
}

#[derive(Debug, Clone, Queryable)]
pub struct ItemRecord {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
    pub decision: ItemDecision,
    pub reason: Option<String>,
    pub decided_by: Option<UserId>,
    pub decided_at: Option<NaiveDateTime>,
}

// --- the form's rules ------------------------------------------------------------------------------

/// THE check of a filed form: codes from the catalogue for the agency's kind, each item backed by
/// a declared legal basis (R-LINK-03), a provisioning method (R-LINK-01), a usage period (R-LINK-12),
/// the eight items of the rules (R-LINK-04), and changes only on a change application (R-LINK-05).
pub fn check_form(
    form: &LinkForm,
    kind: ApplicationKind,
    agency_kind: AgencyKind,
    today: NaiveDate,
) -> Result<(), IdentityError> {
    check_legal_bases(form, agency_kind)?;
    check_items(form, agency_kind)?;
    check_provisioning(&form.provisioning)?;
    if form.usage_until < form.usage_from {
        return Err(IdentityError::invalid("usage_period.until", "must not be before usage_period.from"));
    }
    if form.usage_until < today {
        return Err(IdentityError::invalid("usage_period.until", "is already past"));
    }
    if form.usage_until > links::add_months(form.usage_from, 12 * MAX_USAGE_YEARS) {
        return Err(IdentityError::invalid(
            "usage_period.until",
            format!("at most {MAX_USAGE_YEARS} years per application"),
        ));
    }
    check_rules(&form.management_rules)?;
    match kind {
        ApplicationKind::First if !form.changes.is_empty() => {
            Err(IdentityError::invalid("changes", "a first application changes nothing: leave it empty"))
        }
        ApplicationKind::Change if form.changes.is_empty() => Err(IdentityError::NoChange),
        _ => Ok(()),
    }
}

fn check_legal_bases(form: &LinkForm, agency_kind: AgencyKind) -> Result<(), IdentityError> {
    if form.legal_bases.is_empty() {
        return Err(IdentityError::missing("legal_bases"));
    }
    if form.legal_bases.len() > MAX_LEGAL_BASES {
        return Err(IdentityError::invalid("legal_bases", format!("at most {MAX_LEGAL_BASES}")));
    }
    for (index, code) in form.legal_bases.iter().enumerate() {
        let field = format!("legal_bases[{index}]");
        match catalogue::legal_basis(code) {
            None => return Err(IdentityError::invalid(field, format!("`{code}` is not in the catalogue"))),
            Some(basis) if basis.agency_kind != agency_kind => {
                return Err(IdentityError::invalid(
                    field,
                    format!("`{code}` is not a legal basis of this kind of agency"),
                ))
            }
            Some(_) => {}
        }
        if form.legal_bases[..index].contains(code) {
            return Err(IdentityError::invalid(field, "is listed twice"));
        }
    }
    Ok(())
}

/// R-LINK-03: each requested query type is backed by a legal basis the form declares.
fn check_items(form: &LinkForm, agency_kind: AgencyKind) -> Result<(), IdentityError> {
    if form.items.is_empty() {
        return Err(IdentityError::missing("items"));
    }
    if form.items.len() > MAX_ITEMS {
        return Err(IdentityError::invalid("items", format!("at most {MAX_ITEMS}")));
    }
    for (index, item) in form.items.iter().enumerate() {
        if QueryType::parse(&item.query_type).is_none() {
            return Err(IdentityError::invalid(
                format!("items[{index}].query_type"),
                "not a query type of the catalogue",
            ));
        }
        match catalogue::purpose(&item.purpose_code) {
            Some(purpose) if purpose.agency_kind == agency_kind => {}
            _ => {
                return Err(IdentityError::invalid(
                    format!("items[{index}].purpose_code"),
                    "not a purpose of the catalogue for this kind of agency",
                ))
            }
        }
        if !form.legal_bases.contains(&item.legal_basis) {
            return Err(IdentityError::ItemWithoutLegalBasis { index, query_type: item.query_type.clone() });
        }
        if form.items[..index].contains(item) {
            return Err(IdentityError::invalid(format!("items[{index}]"), "is requested twice"));
        }
    }
    Ok(())
}

/// R-LINK-01: online query and/or a file transfer with its method and designated account or IP.
fn check_provisioning(provisioning: &Provisioning) -> Result<(), IdentityError> {
    if !provisioning.online_query && provisioning.file_transfer.is_none() {
        return Err(IdentityError::invalid("provisioning", "choose online query, a file transfer, or both"));
    }
    if let Some(transfer) = &provisioning.file_transfer {
        if transfer.method == TransferMethod::Other
            && transfer.method_other.as_deref().is_none_or(|m| m.trim().is_empty())
        {
            return Err(IdentityError::missing("provisioning.file_transfer.method_other"));
        }
    }
    Ok(())
}

/// R-LINK-04: the attached rules cover all eight items of 003 pt 4; otherwise the application is
/// refused naming every missing item.
fn check_rules(rules: &ManagementRules) -> Result<(), IdentityError> {
    let missing: Vec<RulesItem> =
        RulesItem::ALL.iter().copied().filter(|item| !rules.coverage.iter().any(|c| c.item == *item)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(IdentityError::RulesIncomplete { missing })
    }
}

// --- filing ----------------------------------------------------------------------------------------

struct Target {
    id: AgencyId,
    kind: AgencyKind,
    sponsor: Option<AgencyId>,
}

/// Who the application is for, and through whom (R-LINK-11): a public agency applies for itself; a
/// non-public agency only through its competent authority, recorded as its sponsor.
fn target_agency(conn: &mut DbConn, actor: &Actor, agency_code: Option<&AgencyCode>) -> Result<Target, IdentityError> {
    let code = agency_code.unwrap_or(&actor.agency_code);
    let found: Option<(AgencyId, String, bool, Option<AgencyId>)> = agencies::table
        .filter(agencies::code.eq(code))
        .select((agencies::id, agencies::kind, agencies::is_public, agencies::competent_authority_id))
        .first(conn)
        .optional()?;
    let Some((id, kind, is_public, authority)) = found else {
        return Err(IdentityError::invalid("agency_code", "no such agency"));
    };
    let kind = AgencyKind::parse(&kind)
        .ok_or_else(|| IdentityError::invalid("agency_code", "this agency does not look up immigration data"))?;
    if is_public {
        if id != actor.agency_id {
            return Err(IdentityError::NotEntitledToApply { agency: code.clone() });
        }
        return Ok(Target { id, kind, sponsor: None });
    }
    match authority {
        Some(authority) if authority == actor.agency_id => Ok(Target { id, kind, sponsor: Some(authority) }),
        _ => Err(IdentityError::NotEntitledToApply { agency: code.clone() }),
    }
}

/// A first application (R-LINK-02): a pending link whose items wait for the immigration agency.
pub fn apply(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    agency_code: Option<&AgencyCode>,
    form: LinkForm,
) -> Result<LinkDetail, IdentityError> {
    actor.require_any(links::AGENCY_SIDE)?;
    conn.write_transaction(|conn| {
        let target = target_agency(conn, actor, agency_code)?;
        check_form(&form, ApplicationKind::First, target.kind, business_date(now))?;
        if let Some(live) = links::current_link(conn, &target.id)?.filter(|link| link.status.is_live()) {
            return Err(IdentityError::LinkExists { link_id: live.id });
        }
        let link_id = LinkId::new(new_id());
        let (valid_from, valid_until) = links::usage_bounds(form.usage_from, form.usage_until);
        diesel::insert_into(agency_links::table)
            .values((
                agency_links::id.eq(&link_id),
                agency_links::agency_id.eq(&target.id),
                agency_links::status.eq(LinkStatus::Pending),
                agency_links::valid_from.eq(valid_from),
                agency_links::valid_until.eq(valid_until),
                agency_links::created_at.eq(to_db(now)),
                agency_links::sponsor_agency_id.eq(&target.sponsor),
                agency_links::status_cause.eq(LinkCause::Applied),
                agency_links::status_reason.eq("first application filed"),
                agency_links::status_changed_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        let link = links::find(conn, &link_id)?;
        links::record_creation(conn, now, &link, &actor.user_id)?;
        file(conn, now, actor, &link, ApplicationKind::First, &form)?;
        links::load_detail(conn, link)
    })
}

/// A change application for a live link (R-LINK-05), with the latest rules. A stop request stops the
/// link at once; anything else waits for the immigration agency's decisions, the link working as
/// before meanwhile.
pub fn apply_for_change(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    form: LinkForm,
) -> Result<LinkDetail, IdentityError> {
    // The role first: another agency's link must answer as a missing one (see `links::visible_link`).
    actor.require_any(links::AGENCY_SIDE)?;
    conn.write_transaction(|conn| {
        let link = links::lock(conn, link_id)?;
        links::require_agency_side(actor, &link)?;
        link.require_in_force()?;
        let kind: String =
            agencies::table.filter(agencies::id.eq(&link.agency_id)).select(agencies::kind).first(conn)?;
        let agency_kind =
            AgencyKind::parse(&kind).ok_or_else(|| IdentityError::Internal(format!("agency kind `{kind}`")))?;
        check_form(&form, ApplicationKind::Change, agency_kind, business_date(now))?;
        if under_review(conn, &link.id)?.is_some() {
            return Err(IdentityError::RequestPending);
        }
        let application_id = file(conn, now, actor, &link, ApplicationKind::Change, &form)?;
        if form.changes.contains(&ChangeKind::Stop) {
            close_application(conn, now, &application_id)?;
            links::move_link(
                conn,
                now,
                &link,
                LinkStatus::Terminated,
                LinkCause::StopRequested,
                "the agency asked to stop the data provision (申請停止資料提供)",
                Some(&actor.user_id),
            )?;
        }
        let link = links::find(conn, &link.id)?;
        links::load_detail(conn, link)
    })
}

/// Stores an application and its items (all pending) and records it.
fn file(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link: &LinkRow,
    application_kind: ApplicationKind,
    form: &LinkForm,
) -> Result<LinkApplicationId, IdentityError> {
    let id = insert_application(conn, now, link, application_kind, &actor.user_id, form, None)?;
    let payload = json!({
        "link_id": link.id, "application_id": id, "kind": application_kind, "changes": form.changes,
        "items": form.items.len(), "usage_from": form.usage_from, "usage_until": form.usage_until,
        "sponsor": link.sponsor_agency_id,
    });
    links::record(conn, now, link, kind::AGENCY_LINK_APPLIED, Some(&actor.user_id), payload)?;
    let reviewers = links::nia_reviewer_emails(conn)?;
    let body = format!(
        "A {application_kind} application {id} for the agency link {} waits for your decision on {} items.",
        link.id,
        form.items.len()
    );
    notifications::enqueue_to_all(conn, now, &reviewers, "移民資訊連結申請待審 Link application to review", &body)?;
    Ok(id)
}

/// An application decided before immilink (the demo's links): stored with every item approved, no
/// events (nothing happened here).
pub fn record_decided_application(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    submitted_by: &UserId,
    form: &LinkForm,
) -> Result<(), IdentityError> {
    insert_application(conn, now, link, ApplicationKind::First, submitted_by, form, Some(now)).map(|_| ())
}

/// The one insert of an application and its items: under review with every item pending, or, with
/// `decided_at`, decided with every item approved then.
fn insert_application(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    kind: ApplicationKind,
    submitted_by: &UserId,
    form: &LinkForm,
    decided_at: Option<DateTime<Utc>>,
) -> Result<LinkApplicationId, IdentityError> {
    let id = LinkApplicationId::new(new_id());
    let stored = serde_json::to_string(form).map_err(|e| IdentityError::Internal(e.to_string()))?;
    let (status, decision) = match decided_at {
        Some(_) => (LinkApplicationStatus::Decided, ItemDecision::Approved),
        None => (LinkApplicationStatus::UnderReview, ItemDecision::Pending),
    };
    let decided_at = decided_at.map(to_db);
    diesel::insert_into(link_applications::table)
        .values((
            link_applications::id.eq(&id),
            link_applications::link_id.eq(&link.id),
            link_applications::agency_id.eq(&link.agency_id),
            link_applications::sponsor_agency_id.eq(&link.sponsor_agency_id),
            link_applications::kind.eq(kind),
            link_applications::status.eq(status),
            link_applications::form.eq(stored),
            link_applications::submitted_by.eq(submitted_by),
            link_applications::submitted_at.eq(to_db(now)),
            link_applications::decided_at.eq(decided_at),
        ))
        .execute(conn)?;
    let rows: Vec<_> = form
        .items
        .iter()
        .map(|item| {
            (
                link_application_items::application_id.eq(&id),
                link_application_items::legal_basis.eq(&item.legal_basis),
                link_application_items::purpose_code.eq(&item.purpose_code),
                link_application_items::query_type.eq(&item.query_type),
                link_application_items::decision.eq(decision),
                link_application_items::decided_at.eq(decided_at),
            )
        })
        .collect();
    immilink_shared::insert_rows!(conn, link_application_items::table, &rows);
    Ok(id)
}

fn close_application(conn: &mut DbConn, now: DateTime<Utc>, id: &LinkApplicationId) -> Result<(), IdentityError> {
    diesel::update(link_applications::table.filter(link_applications::id.eq(id)))
        .set((
            link_applications::status.eq(LinkApplicationStatus::Decided),
            link_applications::decided_at.eq(Some(to_db(now))),
        ))
        .execute(conn)?;
    Ok(())
}

fn under_review(conn: &mut DbConn, link_id: &LinkId) -> Result<Option<LinkApplicationId>, IdentityError> {
    Ok(link_applications::table
        .filter(link_applications::link_id.eq(link_id))
        .filter(link_applications::status.eq(LinkApplicationStatus::UnderReview))
        .select(link_applications::id)
        .first(conn)
        .optional()?)
}

// --- the immigration agency's decisions ------------------------------------------------------------

/// One decision on one requested item.
#[derive(Debug, Clone)]
pub struct ItemVerdict {
    pub item: RequestedItem,
    pub decision: NiaDecision,
    pub reason: String,
}

/// The immigration agency decides items of the link's application under review (R-LINK-03). A
/// rejection needs a reason. When the last item is decided the application closes: a pending link
/// becomes active with exactly the approved items (or rejected, when none is); a live link takes
/// the approved items, usage period and the rest of the change (or stays as it was, when none is).
pub fn decide_items(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    verdicts: &[ItemVerdict],
) -> Result<LinkDetail, IdentityError> {
    links::require_nia(actor)?;
    if verdicts.is_empty() {
        return Err(IdentityError::missing("decisions"));
    }
    conn.write_transaction(|conn| {
        let link = links::lock(conn, link_id)?;
        let application_id = under_review(conn, &link.id)?.ok_or(IdentityError::NothingToDecide)?;
        for (index, verdict) in verdicts.iter().enumerate() {
            record_verdict(conn, now, actor, &application_id, index, verdict)?;
        }
        let payload = json!({
            "link_id": link.id, "application_id": application_id,
            "approved": verdicts.iter().filter(|v| v.decision == NiaDecision::Approve).count(),
            "rejected": verdicts.iter().filter(|v| v.decision == NiaDecision::Reject).count(),
        });
        links::record(conn, now, &link, kind::AGENCY_LINK_ITEMS_DECIDED, Some(&actor.user_id), payload)?;
        if pending_items(conn, &application_id)? == 0 {
            close_application(conn, now, &application_id)?;
            take_effect(conn, now, actor, &link, &application_id)?;
        }
        let link = links::find(conn, &link.id)?;
        links::load_detail(conn, link)
    })
}

fn record_verdict(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    application_id: &LinkApplicationId,
    index: usize,
    verdict: &ItemVerdict,
) -> Result<(), IdentityError> {
    if verdict.decision == NiaDecision::Reject && verdict.reason.trim().is_empty() {
        return Err(IdentityError::missing(format!("decisions[{index}].reason")));
    }
    let item = &verdict.item;
    let decision = match verdict.decision {
        NiaDecision::Approve => ItemDecision::Approved,
        NiaDecision::Reject => ItemDecision::Rejected,
    };
    let updated = diesel::update(
        link_application_items::table
            .filter(link_application_items::application_id.eq(application_id))
            .filter(link_application_items::legal_basis.eq(&item.legal_basis))
            .filter(link_application_items::purpose_code.eq(&item.purpose_code))
            .filter(link_application_items::query_type.eq(&item.query_type))
            .filter(link_application_items::decision.eq(ItemDecision::Pending)),
    )
    .set((
        link_application_items::decision.eq(decision),
        link_application_items::reason.eq(Some(verdict.reason.trim())),
        link_application_items::decided_by.eq(Some(&actor.user_id)),
        link_application_items::decided_at.eq(Some(to_db(now))),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Err(IdentityError::invalid(
            format!("decisions[{index}]"),
            "not an undecided item of the application under review",
        ));
    }
    Ok(())
}

fn pending_items(conn: &mut DbConn, application_id: &LinkApplicationId) -> Result<i64, IdentityError> {
    Ok(link_application_items::table
        .filter(link_application_items::application_id.eq(application_id))
        .filter(link_application_items::decision.eq(ItemDecision::Pending))
        .count()
        .get_result(conn)?)
}

/// A decided application takes effect on its link.
fn take_effect(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link: &LinkRow,
    application_id: &LinkApplicationId,
) -> Result<(), IdentityError> {
    let application = application(conn, application_id)?;
    let approved: Vec<&ItemRecord> =
        application.items.iter().filter(|i| i.decision == ItemDecision::Approved).collect();
    if approved.is_empty() {
        return match link.status {
            LinkStatus::Pending => links::move_link(
                conn,
                now,
                link,
                LinkStatus::Rejected,
                LinkCause::AllItemsRejected,
                "every requested item was rejected",
                Some(&actor.user_id),
            )
            .map(|_| ()),
            // A change with nothing approved leaves the link as it was.
            _ => Ok(()),
        };
    }
    diesel::delete(agency_link_items::table.filter(agency_link_items::link_id.eq(&link.id))).execute(conn)?;
    let rows: Vec<_> = approved
        .iter()
        .map(|item| {
            (
                agency_link_items::link_id.eq(&link.id),
                agency_link_items::legal_basis.eq(&item.legal_basis),
                agency_link_items::purpose_code.eq(&item.purpose_code),
                agency_link_items::query_type.eq(&item.query_type),
            )
        })
        .collect();
    immilink_shared::insert_rows!(conn, agency_link_items::table, &rows);
    let (valid_from, valid_until) = links::usage_bounds(application.form.usage_from, application.form.usage_until);
    diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
        .set((agency_links::valid_from.eq(valid_from), agency_links::valid_until.eq(valid_until)))
        .execute(conn)?;
    if link.status == LinkStatus::Pending {
        let review_due = links::add_months(business_date(now), links::NECESSITY_REVIEW_MONTHS);
        diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
            .set(agency_links::review_due_on.eq(Some(review_due)))
            .execute(conn)?;
        let reason = format!("{} of {} items approved", approved.len(), application.items.len());
        links::move_link(conn, now, link, LinkStatus::Active, LinkCause::Approved, &reason, Some(&actor.user_id))?;
    } else {
        let payload = json!({
            "link_id": link.id, "application_id": application_id, "changes": application.form.changes,
            "items": approved.len(), "usage_from": application.form.usage_from, "usage_until": application.form.usage_until,
        });
        links::record(conn, now, link, kind::AGENCY_LINK_CHANGED, Some(&actor.user_id), payload)?;
        let body = format!(
            "The change application {application_id} for the agency link {} took effect: {} items, usage period {} to {}.",
            link.id,
            approved.len(),
            application.form.usage_from,
            application.form.usage_until
        );
        links::tell_agency(conn, now, link, "移民資訊連結異動生效 Link change in effect", &body)?;
    }
    Ok(())
}

// --- reads -----------------------------------------------------------------------------------------

type ApplicationRow = (
    LinkApplicationId,
    LinkId,
    AgencyId,
    Option<AgencyId>,
    ApplicationKind,
    LinkApplicationStatus,
    String,
    UserId,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

fn hydrate(conn: &mut DbConn, row: ApplicationRow) -> Result<LinkApplication, IdentityError> {
    let (id, link_id, agency_id, sponsor_agency_id, kind, status, form, submitted_by, submitted_at, decided_at) = row;
    let form: LinkForm =
        serde_json::from_str(&form).map_err(|e| IdentityError::Internal(format!("stored link form {id}: {e}")))?;
    let items = link_application_items::table
        .filter(link_application_items::application_id.eq(&id))
        .order((
            link_application_items::query_type,
            link_application_items::legal_basis,
            link_application_items::purpose_code,
        ))
        .select((
            link_application_items::legal_basis,
            link_application_items::purpose_code,
            link_application_items::query_type,
            link_application_items::decision,
            link_application_items::reason,
            link_application_items::decided_by,
            link_application_items::decided_at,
        ))
        .load(conn)?;
    Ok(LinkApplication {
        id,
        link_id,
        agency_id,
        sponsor_agency_id,
        kind,
        status,
        form,
        submitted_by,
        submitted_at,
        decided_at,
        items,
    })
}

const COLUMNS: (
    link_applications::id,
    link_applications::link_id,
    link_applications::agency_id,
    link_applications::sponsor_agency_id,
    link_applications::kind,
    link_applications::status,
    link_applications::form,
    link_applications::submitted_by,
    link_applications::submitted_at,
    link_applications::decided_at,
) = (
    link_applications::id,
    link_applications::link_id,
    link_applications::agency_id,
    link_applications::sponsor_agency_id,
    link_applications::kind,
    link_applications::status,
    link_applications::form,
    link_applications::submitted_by,
    link_applications::submitted_at,
    link_applications::decided_at,
);

pub fn application(conn: &mut DbConn, id: &LinkApplicationId) -> Result<LinkApplication, IdentityError> {
    let row: ApplicationRow = link_applications::table
        .filter(link_applications::id.eq(id))
        .select(COLUMNS)
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the link application"))?;
    hydrate(conn, row)
}

/// A link's applications, oldest first.
pub fn applications_of(conn: &mut DbConn, link_id: &LinkId) -> Result<Vec<LinkApplication>, IdentityError> {
    let rows: Vec<ApplicationRow> = link_applications::table
        .filter(link_applications::link_id.eq(link_id))
        .order((link_applications::submitted_at.asc(), link_applications::id.asc()))
        .select(COLUMNS)
        .load(conn)?;
    rows.into_iter().map(|row| hydrate(conn, row)).collect()
}

/// Everything the printed form shows: the application, its link's agency (and sponsor) names.
#[derive(Debug, Clone)]
pub struct PrintableApplication {
    pub application: LinkApplication,
    pub agency_code: AgencyCode,
    pub agency_name: String,
    pub sponsor_name: Option<String>,
}

/// One application of a link the actor may see, for printing.
pub fn printable(
    conn: &mut DbConn,
    actor: &Actor,
    link_id: &LinkId,
    application_id: &LinkApplicationId,
) -> Result<PrintableApplication, IdentityError> {
    let (link, _) = links::visible_link(conn, actor, link_id)?;
    let application = application(conn, application_id)?;
    if application.link_id != link.id {
        return Err(IdentityError::NotFound("the link application"));
    }
    let (agency_code, agency_name): (AgencyCode, String) = agencies::table
        .filter(agencies::id.eq(&link.agency_id))
        .select((agencies::code, agencies::name))
        .first(conn)?;
    let sponsor_name = match &link.sponsor_agency_id {
        Some(sponsor) => Some(agencies::table.filter(agencies::id.eq(sponsor)).select(agencies::name).first(conn)?),
        None => None,
    };
    Ok(PrintableApplication { application, agency_code, agency_name, sponsor_name })
}
