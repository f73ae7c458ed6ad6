//! The users-file credential backend (`credentials.backend = "file"`): a
//! TOML list of users with bcrypt or argon2id hashes, read at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use async_trait::async_trait;
use serde::Deserialize;

use super::password_hash::is_supported_hash;
use super::{CredentialStore, Identity, StoreError, UserRecord};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<FileUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    id: String,
    username: String,
    #[serde(default)]
    email: String,
    password_hash: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default = "active_default")]
    active: bool,
}

fn active_default() -> bool {
    true
}

pub(crate) struct FileCredentialStore {
    /// Swapped whole on reload (SIGHUP), so a lookup sees the old or the new
    /// file, never a mix.
    users: ArcSwap<Vec<UserRecord>>,
    path: Option<PathBuf>,
}

impl FileCredentialStore {
    /// Reads and checks the users file; errors name the file and the entry.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let users = Self::read(path)?;
        Ok(Self {
            users: ArcSwap::from_pointee(users),
            path: Some(path.to_path_buf()),
        })
    }

    fn read(path: &Path) -> anyhow::Result<Vec<UserRecord>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("credentials.file.path: cannot read {}: {e}", path.display())
        })?;
        Self::parse_users(&text)
            .map_err(|e| anyhow::anyhow!("credentials.file.path: {}: {e}", path.display()))
    }

    /// A store from users-file text, with nothing to reload (tests).
    #[cfg(test)]
    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(Self {
            users: ArcSwap::from_pointee(Self::parse_users(text)?),
            path: None,
        })
    }

    fn parse_users(text: &str) -> anyhow::Result<Vec<UserRecord>> {
        let file: UsersFile = toml::from_str(text)?;
        let mut users: Vec<UserRecord> = Vec::with_capacity(file.user.len());
        for (i, u) in file.user.into_iter().enumerate() {
            if !is_supported_hash(&u.password_hash) {
                anyhow::bail!(
                    "user[{i}] ({}): password_hash is not a bcrypt or argon2id hash; make one with `portcullis hash-password`",
                    u.username
                );
            }
            let clash = users.iter().any(|o| {
                o.identity.id == u.id
                    || o.identity.username == u.username
                    || (!u.email.is_empty() && o.identity.email.eq_ignore_ascii_case(&u.email))
            });
            if clash {
                anyhow::bail!(
                    "user[{i}] ({}): id, username or email is used twice",
                    u.username
                );
            }
            users.push(UserRecord {
                identity: Identity {
                    id: u.id,
                    username: u.username,
                    email: u.email,
                    roles: u.roles,
                },
                password_hash: u.password_hash,
                active: u.active,
            });
        }
        Ok(users)
    }
}

#[async_trait]
impl CredentialStore for FileCredentialStore {
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .users
            .load()
            .iter()
            .find(|u| {
                u.identity.username == login
                    || (!u.identity.email.is_empty()
                        && u.identity.email.eq_ignore_ascii_case(login))
            })
            .cloned())
    }

    async fn find_current(&self, identity: &Identity) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .users
            .load()
            .iter()
            .find(|u| u.identity.id == identity.id)
            .cloned())
    }

    fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let users = Self::read(path).map_err(|e| format!("{e:#}"))?;
        self.users.store(Arc::new(users));
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuCE4hKf2b8nu3M4iQvPz4ZQqB3k8k9C6";

    #[tokio::test]
    async fn users_are_found_by_username_or_email() {
        let store = FileCredentialStore::parse(&format!(
            "[[user]]\nid = \"1\"\nusername = \"demo\"\nemail = \"Demo@Example.com\"\npassword_hash = \"{HASH}\"\nroles = [\"patient\"]\n"
        ))
        .unwrap();
        assert_eq!(
            store
                .find_by_login("demo")
                .await
                .unwrap()
                .unwrap()
                .identity
                .id,
            "1"
        );
        assert_eq!(
            store
                .find_by_login("demo@example.com")
                .await
                .unwrap()
                .unwrap()
                .identity
                .id,
            "1"
        );
        assert!(store.find_by_login("Demo").await.unwrap().is_none());
        let demo = store.find_by_login("demo").await.unwrap().unwrap();
        assert!(
            store
                .find_current(&demo.identity)
                .await
                .unwrap()
                .unwrap()
                .active
        );
    }

    #[test]
    fn plaintext_password_is_refused_with_a_hint() {
        let err = FileCredentialStore::parse(
            "[[user]]\nid = \"1\"\nusername = \"demo\"\npassword_hash = \"hunter2\"\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("hash-password"), "{err}");
    }

    #[test]
    fn duplicate_usernames_are_refused() {
        let user =
            format!("[[user]]\nid = \"1\"\nusername = \"demo\"\npassword_hash = \"{HASH}\"\n");
        let twice = format!("{user}{}", user.replace("id = \"1\"", "id = \"2\""));
        assert!(FileCredentialStore::parse(&twice).is_err());
    }
}
