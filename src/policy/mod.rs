//! Policy: what a request may do. Path normalization, route rules, and the
//! validation of `next` redirect targets.

pub mod next;
pub mod path;
pub mod routes;
