//! The app's own MySQL/MariaDB users table as the credential backend
//! (`credentials.backend = "mysql"`), read with the operator's `user_query`.
//!
//! The query must return columns `id, username, email, password_hash, roles,
//! active`; every `?` in it is bound to the name the user typed. `roles` may
//! be a comma list or a JSON array; `active` anything MySQL calls truthy.
//! Writes are only the operator's optional statements: `rehash_update`,
//! `password_update` (hash, then id), `login_update` (id) and
//! `registration.insert`.

use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, Value};

use super::{CredentialStore, Identity, StoreError, UserRecord};
use crate::config::MysqlConfig;

/// Longest any credentials query may take before the login gets a 503.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct MysqlCredentialStore {
    pool: Pool,
    user_query: String,
    placeholders: usize,
    rehash_update: Option<String>,
    password_update: Option<String>,
    login_update: Option<String>,
}

impl MysqlCredentialStore {
    /// Builds the pool without connecting (connections are made on demand).
    pub(crate) fn new(config: &MysqlConfig) -> Result<Self, String> {
        let opts =
            Opts::from_url(&config.url).map_err(|e| format!("credentials.mysql.url: {e}"))?;
        let constraints = PoolConstraints::new(0, config.pool_size.max(1) as usize)
            .ok_or("credentials.mysql.pool_size: must be at least 1")?;
        let opts = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::default().with_constraints(constraints))
            .prefer_socket(false);
        Ok(Self {
            pool: Pool::new(opts),
            placeholders: config.user_query.matches('?').count(),
            user_query: config.user_query.clone(),
            rehash_update: config.rehash_update.clone(),
            password_update: config.password_update.clone(),
            login_update: config.login_update.clone(),
        })
    }

    async fn find(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        let params: Vec<Value> = vec![Value::from(login); self.placeholders];
        let row: Option<Row> = self
            .run(|mut conn| {
                let query = self.user_query.clone();
                async move { conn.exec_first(query, params).await }
            })
            .await?;
        row.map(user_of).transpose()
    }

    /// Runs one step on a pooled connection with [`QUERY_TIMEOUT`].
    async fn run<T, F, Fut>(&self, step: F) -> Result<T, StoreError>
    where
        F: FnOnce(mysql_async::Conn) -> Fut,
        Fut: std::future::Future<Output = mysql_async::Result<T>>,
    {
        let work = async {
            let conn = self.pool.get_conn().await?;
            step(conn).await
        };
        match tokio::time::timeout(QUERY_TIMEOUT, work).await {
            Err(_) => Err(unavailable("query timed out")),
            Ok(Err(e)) => Err(unavailable(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

fn unavailable(message: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: "mysql",
        message: message.to_string(),
    }
}

/// Reads one `user_query` row; a row missing a column is a config problem,
/// reported as such (the login gets a 503, the log names the column).
fn user_of(row: Row) -> Result<UserRecord, StoreError> {
    let column = |name: &str| -> Result<Value, StoreError> {
        let index = row
            .columns_ref()
            .iter()
            .position(|c| c.name_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                unavailable(format!(
                    "credentials.mysql.user_query returns no `{name}` column"
                ))
            })?;
        Ok(row.as_ref(index).cloned().unwrap_or(Value::NULL))
    };
    let id = text(column("id")?);
    let roles = parse_roles(&text(column("roles")?));
    Ok(UserRecord {
        identity: Identity {
            id: id.clone(),
            username: text(column("username")?),
            email: text(column("email")?),
            roles,
        },
        password_hash: text(column("password_hash")?),
        active: truthy(&column("active")?),
    })
}

fn text(value: Value) -> String {
    match value {
        Value::NULL => String::new(),
        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        other => other.as_sql(true).trim_matches('\'').to_string(),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Int(i) => *i != 0,
        Value::UInt(u) => *u != 0,
        Value::Bytes(b) => matches!(
            String::from_utf8_lossy(b)
                .trim()
                .to_ascii_lowercase()
                .as_str(),
            "1" | "true" | "yes" | "y" | "t" | "active"
        ),
        _ => false,
    }
}

/// `admin,patient`, `["admin","patient"]`, or empty.
pub(crate) fn parse_roles(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(raw) {
            return list
                .into_iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
        }
    }
    raw.split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

#[async_trait]
impl CredentialStore for MysqlCredentialStore {
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.find(login).await
    }

    /// `user_query` is keyed on a typed name, not the id: try the username,
    /// then the email (a query may match on either alone), and accept only
    /// the row with the same id.
    async fn find_current(&self, identity: &Identity) -> Result<Option<UserRecord>, StoreError> {
        let same_user = |u: &UserRecord| u.identity.id == identity.id;
        if let Some(user) = self.find(&identity.username).await?.filter(same_user) {
            return Ok(Some(user));
        }
        if identity.email.is_empty() {
            return Ok(None);
        }
        Ok(self.find(&identity.email).await?.filter(same_user))
    }

    async fn insert_user(
        &self,
        statement: &str,
        username: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let statement = statement.to_string();
        let params = vec![
            Value::from(username),
            Value::from(email),
            Value::from(password_hash),
        ];
        let work = async {
            let mut conn = self.pool.get_conn().await?;
            conn.exec_drop(statement, params).await
        };
        match tokio::time::timeout(QUERY_TIMEOUT, work).await {
            Err(_) => Err(unavailable("insert timed out")),
            // 1062: duplicate entry (a unique username or email).
            Ok(Err(mysql_async::Error::Server(e))) if e.code == 1062 => Ok(false),
            Ok(Err(e)) => Err(unavailable(e)),
            Ok(Ok(())) => Ok(true),
        }
    }

    fn can_rehash(&self) -> bool {
        self.rehash_update.is_some()
    }

    async fn update_hash(&self, user_id: &str, hash: &str) -> Result<(), StoreError> {
        let Some(update) = self.rehash_update.clone() else {
            return Ok(());
        };
        let params = vec![Value::from(hash), Value::from(user_id)];
        self.run(|mut conn| async move { conn.exec_drop(update, params).await })
            .await
    }

    fn can_set_password(&self) -> bool {
        self.password_update.is_some()
    }

    async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<(), StoreError> {
        let Some(update) = self.password_update.clone() else {
            return Err(unavailable(
                "credentials.mysql.password_update is not configured",
            ));
        };
        let params = vec![Value::from(hash), Value::from(user_id)];
        self.run(|mut conn| async move { conn.exec_drop(update, params).await })
            .await
    }

    async fn activate_user(&self, statement: &str, user_id: &str) -> Result<(), StoreError> {
        let statement = statement.to_string();
        let params = vec![Value::from(user_id)];
        self.run(|mut conn| async move { conn.exec_drop(statement, params).await })
            .await
    }

    async fn record_login(&self, user_id: &str) -> Result<(), StoreError> {
        let Some(update) = self.login_update.clone() else {
            return Ok(());
        };
        let params = vec![Value::from(user_id)];
        self.run(|mut conn| async move { conn.exec_drop(update, params).await })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut conn| async move { conn.ping().await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_comma_lists_and_json_arrays() {
        assert_eq!(parse_roles("admin, patient"), vec!["admin", "patient"]);
        assert_eq!(
            parse_roles("[\"admin\",\"patient\"]"),
            vec!["admin", "patient"]
        );
        assert_eq!(parse_roles(""), Vec::<String>::new());
        assert_eq!(parse_roles("patient"), vec!["patient"]);
        assert_eq!(parse_roles(" , ,x"), vec!["x"]);
    }

    #[test]
    fn active_column_accepts_mysql_truthiness() {
        assert!(truthy(&Value::Int(1)));
        assert!(!truthy(&Value::Int(0)));
        assert!(truthy(&Value::Bytes(b"1".to_vec())));
        assert!(!truthy(&Value::Bytes(b"0".to_vec())));
        assert!(!truthy(&Value::NULL));
    }
}
