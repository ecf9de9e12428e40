//! The steps that need another system as well as the database: submitting an application (contractor
//! check first), handing approved applications to the immigration agency, resolving a contractor
//! conflict (the vendors service's answer), delivering notifications, and the slow password hash.
//! Domain rules stay in `domain`; this module only sequences them.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::accounts::{Account, Actor, Grant};
use crate::domain::applications::{
    self, Application, ApplicationStatus, Decision, NewApplication, OutsideDecision, ReviewDecision, ReviewStep,
};
use crate::domain::contractors::{self, ConflictDecision, ContractorStatus, Resolution};
use crate::domain::{notifications, sessions, ApplicationId, IdentityError, UserId};
use crate::State;

/// Bounds the CPU spent on argon2id, so a login storm queues here instead of starving everything
/// else on the machine (lookups included). Waiting longer than this is answered 503 + Retry-After.
pub struct PasswordHasher {
    permits: tokio::sync::Semaphore,
    max_wait: Duration,
}

impl PasswordHasher {
    pub fn new(concurrency: usize, max_wait: Duration) -> Self {
        Self { permits: tokio::sync::Semaphore::new(concurrency.max(1)), max_wait }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, IdentityError> {
        let busy = || IdentityError::LoginBusy;
        let _permit = tokio::time::timeout(self.max_wait, self.permits.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        actix_web::web::block(work).await.map_err(|err| IdentityError::Internal(err.to_string()))
    }

    pub async fn verify(
        &self,
        password: String,
        credentials: Option<sessions::Credentials>,
    ) -> Result<bool, IdentityError> {
        self.run(move || sessions::password_matches(&password, credentials.as_ref())).await
    }

    pub async fn hash(&self, password: String) -> Result<String, IdentityError> {
        self.run(move || sessions::hash_password(&password)).await?
    }
}

/// The contractor check first (R-ACC-08, R-VEN-08: contractor personnel may apply only for a
/// vendor_staff account), then the stored application.
pub async fn submit_application(
    state: &State,
    application: NewApplication,
    password: String,
) -> Result<Application, IdentityError> {
    let personnel = ContractorStatus::from_answer(state.vendors.is_vendor_personnel(&application.national_id).await?);
    // Refused before the slow hash when the rule refuses anyway.
    contractors::check_account(personnel, &[application.role.role()], application.grants.len())?;
    let password_hash = state.hasher.hash(password).await?;
    let now = state.clock.now();
    let submitted =
        state.db.run(move |conn| applications::submit(conn, now, &application, &password_hash, personnel)).await?;
    state.relay.wake();
    Ok(submitted)
}

/// One local review step; when it completes the agency's part, the application goes straight on to
/// the immigration agency. If the NIA or the vendors service does not answer, the application keeps
/// waiting (the background task retries) and the reviewer sees it at `nia_review`.
pub async fn review_application(
    state: &State,
    actor: Actor,
    id: ApplicationId,
    decision: Decision,
    reason: String,
    granted: Option<Vec<Grant>>,
) -> Result<Application, IdentityError> {
    let now = state.clock.now();
    let review_id = id.clone();
    let view = state
        .db
        .run(move |conn| applications::review(conn, now, &actor, &review_id, decision, &reason, granted))
        .await?;
    state.relay.wake();
    if view.status != ApplicationStatus::NiaReview {
        return Ok(view);
    }
    if let Err(err) = advance_to_nia(state, id.clone()).await {
        tracing::warn!(error = %err, application = %id, "the immigration agency's review is pending");
    }
    state.db.run(move |conn| applications::load(conn, &id)).await
}

/// Hands an application the agency approved to the immigration agency and records its answer. The
/// contractor check runs again first: personnel may have been registered since the application.
/// When either side does not answer the application keeps waiting and the background task retries.
pub async fn advance_to_nia(state: &State, id: ApplicationId) -> Result<(), IdentityError> {
    let lookup_id = id.clone();
    let Some(submission) = state.db.run(move |conn| applications::nia_submission(conn, &lookup_id)).await? else {
        return Ok(());
    };
    let personnel = ContractorStatus::from_answer(state.vendors.is_vendor_personnel(&submission.national_id).await?);
    let outcome = if let Some(decided) = applications::decide_locally(&submission, personnel) {
        decided
    } else {
        let answer = state.nia.review(&submission).await?;
        OutsideDecision {
            step: ReviewStep::NiaReview,
            reviewer_name: "內政部移民署 National Immigration Agency".into(),
            approved: answer.decision == ReviewDecision::Approved,
            reason: answer.reason,
            reference: Some(answer.reference),
        }
    };
    let now = state.clock.now();
    state.db.run(move |conn| applications::finish(conn, now, &id, &outcome)).await?;
    state.relay.wake();
    Ok(())
}

/// Resolves an account's contractor conflict (R-VEN-08). For `not_contractor` the vendors service is
/// asked first whether the holder is still active personnel; when it does not answer nothing changes.
pub async fn resolve_contractor_conflict(
    state: &State,
    actor: Actor,
    user_id: UserId,
    decision: ConflictDecision,
    reason: String,
) -> Result<Account, IdentityError> {
    let resolution = match decision {
        ConflictDecision::RevokeGrants => Resolution::RevokeGrants,
        ConflictDecision::NotContractor => {
            let (who, id) = (actor.clone(), user_id.clone());
            let conflict = state.db.run(move |conn| contractors::conflict(conn, &who, &id)).await?;
            let personnel = state.vendors.is_vendor_personnel(conflict.national_id()).await?;
            Resolution::NotContractor(ContractorStatus::from_answer(personnel))
        }
    };
    let now = state.clock.now();
    let resolved =
        state.db.run(move |conn| contractors::resolve(conn, now, &actor, &user_id, resolution, &reason)).await;
    state.relay.wake();
    resolved
}

/// Retries applications waiting for the immigration agency and delivers queued notifications.
pub async fn background(state: Arc<State>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = retry_waiting_applications(&state).await {
            tracing::warn!(error = %err, "account applications could not be advanced");
        }
        if let Err(err) = deliver_notifications(&state).await {
            tracing::warn!(error = %err, "notifications could not be delivered");
        }
    }
}

async fn retry_waiting_applications(state: &State) -> Result<(), IdentityError> {
    let waiting = state.db.run(applications::awaiting_nia).await?;
    for id in waiting {
        advance_to_nia(state, id).await?;
    }
    Ok(())
}

async fn deliver_notifications(state: &State) -> Result<(), IdentityError> {
    let (db, notifier) = (&state.db, &state.notifier);
    let pending = db.run(|conn| notifications::pending(conn, 50)).await?;
    for message in pending {
        let id = message.id.clone();
        match notifier.send(&message).await {
            Ok(()) => {
                let now = state.clock.now();
                db.run(move |conn| notifications::mark_delivered(conn, now, &id)).await?;
            }
            Err(err) => {
                tracing::warn!(error = %err, notification = %id, "notification delivery failed; will retry");
                db.run(move |conn| notifications::mark_failed(conn, &id, &err)).await?;
                // Keep the order: a failing transport is retried at the next tick.
                break;
            }
        }
    }
    Ok(())
}
