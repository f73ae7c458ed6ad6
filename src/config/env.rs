//! `${ENV_VAR}` interpolation in string values, so secrets never need to live
//! in `proxy.toml`. Runs on the parsed TOML tree before it is typed, so the
//! error can name the key path.

use super::ConfigErrors;

/// Replaces every `${NAME}` in every string of `value` with `lookup(NAME)`.
/// A name that is not set is an error naming the key; `$$` is not special.
pub(crate) fn interpolate(
    value: toml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<toml::Value, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let value = walk(value, String::new(), lookup, &mut errors);
    errors.into_result(value)
}

fn walk(
    value: toml::Value,
    key: String,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut ConfigErrors,
) -> toml::Value {
    match value {
        toml::Value::String(s) => match substitute(&s, lookup) {
            Ok(s) => toml::Value::String(s),
            Err(message) => {
                errors.push(&key, message);
                toml::Value::String(s)
            }
        },
        toml::Value::Array(items) => toml::Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| walk(v, format!("{key}[{i}]"), lookup, errors))
                .collect(),
        ),
        toml::Value::Table(table) => toml::Value::Table(
            table
                .into_iter()
                .map(|(k, v)| {
                    let path = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}.{k}")
                    };
                    let v = walk(v, path, lookup, errors);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

fn substitute(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated \"${{\" in {s:?}"));
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr3t".to_string())
    }

    #[test]
    fn whole_and_embedded_variables_are_replaced() {
        assert_eq!(substitute("${SECRET}", &lookup).unwrap(), "s3cr3t");
        assert_eq!(
            substitute("mysql://r:${SECRET}@h/app", &lookup).unwrap(),
            "mysql://r:s3cr3t@h/app"
        );
        assert_eq!(substitute("plain", &lookup).unwrap(), "plain");
    }

    #[test]
    fn missing_variable_error_names_the_key_and_variable() {
        let value: toml::Value = toml::from_str("[tokens]\nsecret = \"${NOPE}\"").unwrap();
        let err = interpolate(value, &lookup).unwrap_err().to_string();
        assert!(err.contains("tokens.secret"), "{err}");
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn unterminated_reference_is_an_error() {
        assert!(substitute("${SECRET", &lookup).is_err());
        assert!(substitute("${}", &lookup).is_err());
    }
}
