//! Test databases: a fresh PostgreSQL schema or MySQL database per test on
//! the servers named by `PORTCULLIS_TEST_POSTGRES` / `PORTCULLIS_TEST_MYSQL`
//! (defaults: the local servers), dropped again when the guard is dropped.

use mysql_async::prelude::Queryable;
use tokio_postgres::NoTls;

pub fn postgres_base() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn mysql_base() -> String {
    std::env::var("PORTCULLIS_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn unique(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}_{n:016x}")
}

/// Appends a query parameter to a URL that may already have some.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// A schema of its own in the test database; `url` selects it through
/// `search_path`, so portcullis' tables land there.
pub struct PgSchema {
    pub name: String,
    pub url: String,
    base: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        let base = postgres_base();
        let name = unique("pc");
        let (client, conn) = tokio_postgres::connect(&base, NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {base} is not answering ({e}); run scripts/test.sh")
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let url = with_param(&base, &format!("options=-csearch_path%3D{name}"));
        PgSchema { name, url, base }
    }

    /// A client with this schema on its search path.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    /// TOML selecting the PostgreSQL session store on this schema.
    pub fn toml(&self) -> String {
        self.toml_with("")
    }

    /// Like [`PgSchema::toml`] with more `[session]` keys.
    pub fn toml_with(&self, session_keys: &str) -> String {
        format!(
            "[session]\nstore = \"postgres\"\n{session_keys}\n[postgres]\nurl = \"{}\"\n",
            self.url
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        cleanup(async move {
            if let Ok((client, conn)) = tokio_postgres::connect(&base, NoTls).await {
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                    .await;
            }
        });
    }
}

/// Runs a clean-up on a runtime of its own: guards are dropped from inside
/// the test's runtime, which cannot be blocked on.
fn cleanup(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(work);
    })
    .join();
}

/// A database of its own with the reference app's `users` table.
pub struct MysqlDb {
    pub name: String,
    pub url: String,
    base: String,
}

impl MysqlDb {
    pub async fn create() -> MysqlDb {
        let base = mysql_base();
        let name = unique("pc");
        let mut conn = mysql_async::Conn::from_url(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("MySQL at {base} is not answering ({e}); run scripts/test.sh")
            });
        conn.query_drop(format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        conn.query_drop(format!(
            "CREATE TABLE {name}.users (
                id INT PRIMARY KEY AUTO_INCREMENT,
                username VARCHAR(64) NOT NULL UNIQUE,
                email VARCHAR(128) NOT NULL,
                password_hash VARCHAR(255) NOT NULL,
                roles TEXT,
                is_active TINYINT(1) NOT NULL DEFAULT 1
            )"
        ))
        .await
        .unwrap();
        conn.disconnect().await.unwrap();
        let url = match base.rfind('/') {
            Some(i) if base[..i].contains("://") && i > base.find("://").unwrap() + 2 => {
                format!("{}/{name}", &base[..i])
            }
            _ => format!("{base}/{name}"),
        };
        MysqlDb { name, url, base }
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(&self.url).await.unwrap()
    }

    /// Inserts a user; returns its id.
    pub async fn add_user(&self, username: &str, hash: &str, roles: &str, active: bool) -> u64 {
        let mut conn = self.conn().await;
        conn.exec_drop(
            "INSERT INTO users (username, email, password_hash, roles, is_active) VALUES (?, ?, ?, ?, ?)",
            (username, format!("{username}@example.com"), hash, roles, active),
        )
        .await
        .unwrap();
        let id = conn.last_insert_id().unwrap();
        conn.disconnect().await.unwrap();
        id
    }

    pub async fn exec(&self, sql: &str) {
        let mut conn = self.conn().await;
        conn.query_drop(sql).await.unwrap();
        conn.disconnect().await.unwrap();
    }

    /// TOML selecting the MySQL credential backend on this database.
    pub fn toml(&self, extra_keys: &str) -> String {
        format!(
            "[credentials]\nbackend = \"mysql\"\n[credentials.mysql]\nurl = \"{}\"\n{extra_keys}\n",
            self.url
        )
    }
}

impl Drop for MysqlDb {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        cleanup(async move {
            if let Ok(mut conn) = mysql_async::Conn::from_url(&base).await {
                let _ = conn
                    .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                    .await;
                let _ = conn.disconnect().await;
            }
        });
    }
}
