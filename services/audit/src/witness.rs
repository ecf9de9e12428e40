//! The witness: the immigration agency, which cosigns each new checkpoint once it has checked it is
//! consistent with the last it cosigned (c2sp.org/tlog-witness `add-checkpoint`). The checkpointer
//! task issues a checkpoint every interval while the log grows and takes it to the witness; a
//! refusal is logged as the evidence it is.

use std::sync::Arc;
use std::time::Duration;

use immilink_shared::clock::SharedClock;
use immilink_shared::db::Db;

use crate::domain::checkpoints::{self, LogKeys, WitnessRequest};
use crate::domain::AuditError;

/// How the witness answered an `add-checkpoint`.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// 200: its cosignature lines.
    Cosigned(String),
    /// 409: it holds another size for this log (the body).
    Conflict(u64),
    /// Anything else: the status and body.
    Refused(u16, String),
}

#[derive(Clone)]
pub struct WitnessClient {
    http: reqwest::Client,
    url: String,
    origin: String,
}

/// How long one call to the witness may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl WitnessClient {
    pub fn new(http: reqwest::Client, url: &str, origin: &str) -> Self {
        Self { http, url: url.trim_end_matches('/').to_owned(), origin: origin.to_owned() }
    }

    pub async fn add_checkpoint(&self, request: &WitnessRequest) -> Result<Answer, String> {
        let response = self
            .http
            .post(format!("{}/witness/v1/add-checkpoint", self.url))
            .timeout(CALL_TIMEOUT)
            .header("content-type", "text/plain; charset=utf-8")
            .body(request.body())
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|err| err.to_string())?;
        Ok(match status {
            200 => Answer::Cosigned(body),
            409 => match body.trim().parse() {
                Ok(size) => Answer::Conflict(size),
                Err(_) => Answer::Refused(status, body),
            },
            _ => Answer::Refused(status, body),
        })
    }

    /// The newest checkpoint the witness has cosigned for this log, as it holds it (`None` when it
    /// cannot be asked or holds none).
    pub async fn latest(&self) -> Option<String> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/witness/v1/checkpoint", self.url), [("origin", &self.origin)])
                .ok()?;
        let response = self.http.get(url).timeout(CALL_TIMEOUT).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }
}

/// Issues a checkpoint every `interval` while the log grows, and takes each to the witness.
pub async fn run_checkpointer(
    db: Db,
    clock: SharedClock,
    keys: Arc<LogKeys>,
    witness: Option<WitnessClient>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = checkpoint_once(&db, &clock, &keys, witness.as_ref()).await {
            tracing::error!(error = %err, "checkpoint not issued or not witnessed");
        }
    }
}

/// One round: sign a checkpoint of the whole tree if it grew, then have the newest cosigned.
pub async fn checkpoint_once(
    db: &Db,
    clock: &SharedClock,
    keys: &Arc<LogKeys>,
    witness: Option<&WitnessClient>,
) -> Result<(), AuditError> {
    let now = clock.now();
    let issuing = Arc::clone(keys);
    db.run(move |conn| checkpoints::issue(conn, now, &issuing)).await?;
    let Some(witness) = witness else { return Ok(()) };
    let mut old_size = None;
    // At most two tries: the second starts from the size the witness says it holds.
    for _ in 0..2 {
        let Some(request) = db.run(move |conn| checkpoints::to_witness(conn, old_size)).await? else {
            return Ok(());
        };
        match witness.add_checkpoint(&request).await.map_err(AuditError::WitnessRefused)? {
            Answer::Cosigned(lines) => {
                let (keys, now) = (Arc::clone(keys), clock.now());
                let stored = db
                    .run(move |conn| checkpoints::record_cosignature(conn, now, &keys, &request.note, &lines))
                    .await?;
                tracing::info!(tree_size = stored.tree_size, "checkpoint cosigned by the witness");
                return Ok(());
            }
            Answer::Conflict(size) => old_size = Some(size),
            Answer::Refused(status, body) => {
                return Err(AuditError::WitnessRefused(format!("{status}: {}", body.trim())));
            }
        }
    }
    Err(AuditError::WitnessRefused("the witness and the log disagree on the last cosigned size".into()))
}
