//! The broker's rules: what a lookup must declare, who may run it, and the order in which it is
//! recorded and forwarded. Functions take a connection and a time, so they test without HTTP.

pub mod approvals;
pub mod batches;
pub mod doubt;
pub mod forms;
pub mod lookup;
pub mod outbox;
pub mod proxy;
pub mod request;

use immilink_shared::db::DbError;

impl From<diesel::result::Error> for BrokerDbError {
    fn from(err: diesel::result::Error) -> Self {
        BrokerDbError(DbError::Query(err))
    }
}

/// Database failures inside broker domain functions.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BrokerDbError(#[from] pub DbError);

impl From<BrokerDbError> for immilink_shared::ApiError {
    fn from(err: BrokerDbError) -> Self {
        err.0.into()
    }
}
