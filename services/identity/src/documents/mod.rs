//! The identity service's printable documents: askama templates (`services/identity/templates/`)
//! extending the shared `print.html` (A4, Traditional Chinese, the one print stylesheet, page
//! numbers), filled from domain records. Dates are ROC dates and check boxes are printed as on paper
//! (`immilink_shared::documents`); every recorded value is escaped by askama.

pub mod link_application;

pub use link_application::{link_application_html, LinkApplicationForm};
