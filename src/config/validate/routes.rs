//! `[[route]]`, compiled by `policy::routes`.

use crate::config::raw;
use crate::config::ConfigErrors;
use crate::policy::routes::{RouteSpec, RouteTable};

pub(super) fn routes(raw: Vec<raw::RawRoute>, e: &mut ConfigErrors) -> RouteTable {
    let specs = raw
        .into_iter()
        .map(|r| RouteSpec {
            path: r.path,
            methods: r.methods,
            access: r.access,
            roles: r.roles,
        })
        .collect();
    match RouteTable::compile(specs) {
        Ok(table) => table,
        Err(problems) => {
            for (key, message) in problems {
                e.push(&key, message);
            }
            RouteTable::default()
        }
    }
}
