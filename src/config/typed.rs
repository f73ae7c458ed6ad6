//! Typing the interpolated value tree into [`RawConfig`]. serde stops at the
//! first value it refuses; to report every bad value in one pass, as
//! `validate` does for everything past typing, a refused value is recorded,
//! taken out of the tree (its default takes its place) and typing runs
//! again. A refused list element takes its whole list out (taking out the
//! element alone would shift the ones after it), and a refused key that its
//! table cannot do without takes the table out.

use serde_path_to_error::{Path, Segment};

use super::raw::RawConfig;
use super::ConfigErrors;

/// More bad values than this in one file are not worth a pass each.
const MAX_PASSES: usize = 64;

/// Every value serde refused, by key path, and the raw config typed without
/// them (`None` where typing had to stop), for `validate` to find the rest.
pub(crate) fn typed(mut value: toml::Value) -> (Option<RawConfig>, ConfigErrors) {
    let mut errors = ConfigErrors::default();
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_PASSES {
        let err = match serde_path_to_error::deserialize::<_, RawConfig>(value.clone()) {
            Ok(raw) => return (Some(raw), errors),
            Err(err) => err,
        };
        // A required key this loop took out was reported as refused.
        if !is_removed_required_key(&err, &removed) {
            errors.push_typed(&err);
        }
        match remove(&mut value, err.path()) {
            Some(key) => removed.push(key),
            None => return (None, errors),
        }
    }
    (None, errors)
}

/// "missing field `x`" for a key this loop took out.
fn is_removed_required_key(
    err: &serde_path_to_error::Error<toml::de::Error>,
    removed: &[String],
) -> bool {
    let Some(field) = err
        .inner()
        .message()
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    else {
        return false;
    };
    let key = match err.path().to_string() {
        root if root == "." => field.to_string(),
        parent => format!("{parent}.{field}"),
    };
    removed.contains(&key)
}

/// Takes the value at `path` (or the list holding it) out of its table and
/// returns its key path; `None` if the path does not lead to a table's key.
fn remove(value: &mut toml::Value, path: &Path) -> Option<String> {
    let mut segments: Vec<&Segment> = path.iter().collect();
    while matches!(segments.last(), Some(Segment::Seq { .. })) {
        segments.pop();
    }
    let (Segment::Map { key }, parents) = segments.split_last()? else {
        return None;
    };
    let mut at = value;
    for segment in parents {
        at = match (segment, at) {
            (Segment::Map { key }, toml::Value::Table(t)) => t.get_mut(key.as_str())?,
            (Segment::Seq { index }, toml::Value::Array(a)) => a.get_mut(*index)?,
            _ => return None,
        };
    }
    let toml::Value::Table(table) = at else {
        return None;
    };
    table.remove(key.as_str())?;
    Some(key_path(&segments))
}

/// As `Path` displays itself: `route[1].access`.
fn key_path(segments: &[&Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        if !out.is_empty() && !matches!(segment, Segment::Seq { .. }) {
            out.push('.');
        }
        out.push_str(&segment.to_string());
    }
    out
}
