//! Policy: what a request may do. Path normalization, route rules, the
//! validation of `next` redirect targets, and the coverage of the app's
//! OpenAPI operations by the rules.

pub mod next;
pub(crate) mod openapi;
pub mod path;
pub mod routes;
