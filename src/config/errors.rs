//! [`ConfigErrors`]: every problem found in `proxy.toml`, by key.

use std::fmt;

/// Every problem found in a config, one `key: message` per line.
#[derive(Debug, Default)]
pub struct ConfigErrors {
    pub(crate) problems: Vec<(String, String)>,
}

impl ConfigErrors {
    pub(crate) fn push(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push((key.to_string(), message.into()));
    }

    pub(crate) fn from_toml(e: toml::de::Error) -> Self {
        let mut errors = Self::default();
        // toml's message already says where (line, column, key).
        errors.push("proxy.toml", e.to_string().trim_end().to_string());
        errors
    }

    /// A value serde refused, as `key.path: message`.
    pub(crate) fn push_typed(&mut self, e: &serde_path_to_error::Error<toml::de::Error>) {
        let key = e.path().to_string();
        let key = if key == "." { "proxy.toml" } else { &key };
        self.push(key, e.inner().message().trim_end());
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, message)) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{key}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
