//! Request path normalization (SPEC, request flow step 2).
//!
//! The app behind portcullis (uvicorn) percent-decodes the whole path before
//! routing, so a rule must be checked against the path the app will act on.
//! We decode unreserved characters, resolve `.` and `..`, and merge repeated
//! slashes; anything that could decode differently in the app (an encoded `/`
//! or `\`, a backslash, a NUL, invalid UTF-8) is refused. The normalized path
//! is both what route rules see and what is forwarded.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path is not absolute")]
    NotAbsolute,
    #[error("path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains a NUL or control character")]
    ControlCharacter,
    #[error("path has a malformed percent-encoding")]
    BadEncoding,
    #[error("path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    #[error("path escapes the root with '..'")]
    EscapesRoot,
}

/// Normalizes an origin-form path (no query). See the module doc.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(raw) {
        return Ok(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut partly_decoded: Vec<u8> = Vec::with_capacity(raw.len());
    let mut fully_decoded: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let decoded = decode_escape(bytes, i).ok_or(PathError::BadEncoding)?;
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    _ if decoded.is_ascii_control() => return Err(PathError::ControlCharacter),
                    _ if is_unreserved(decoded) => partly_decoded.push(decoded),
                    _ => partly_decoded.extend_from_slice(&bytes[i..i + 3]),
                }
                fully_decoded.push(decoded);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            _ if b.is_ascii_control() => return Err(PathError::ControlCharacter),
            _ => {
                partly_decoded.push(b);
                fully_decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(fully_decoded).map_err(|_| PathError::InvalidUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    // Raw bytes above 0x7f are kept as sent; valid since the decoded form is.
    let partly_decoded = String::from_utf8(partly_decoded).map_err(|_| PathError::InvalidUtf8)?;
    resolve_dots(&partly_decoded)
}

/// The byte a `%XX` escape at `at` stands for.
fn decode_escape(bytes: &[u8], at: usize) -> Option<u8> {
    let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
    u8::from_str_radix(hex, 16).ok()
}

/// Full percent-decoding; `None` for malformed escapes or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(decode_escape(bytes, i)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The path as the app will route it (uvicorn decodes every escape): what
/// route rules are matched against. Takes a [`normalize`]d path, in which no
/// escape can decode to a separator.
pub fn routing_path(normalized: &str) -> std::borrow::Cow<'_, str> {
    if !normalized.contains('%') {
        return std::borrow::Cow::Borrowed(normalized);
    }
    std::borrow::Cow::Owned(percent_decode(normalized).unwrap_or_else(|| normalized.to_string()))
}

/// The common case, already normal: no escapes, backslashes or controls,
/// no empty segment and no segment starting with a dot (which covers `.`
/// and `..`; `/.well-known` merely takes the full path).
fn is_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes
        .iter()
        .all(|&b| b > 0x20 && b < 0x7f && b != b'%' && b != b'\\')
        && !bytes
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

/// RFC 3986 unreserved: safe to decode because no server reads them differently.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Resolves `.` and `..` and merges empty segments; keeps a trailing slash.
fn resolve_dots(path: &str) -> Result<String, PathError> {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop().ok_or(PathError::EscapesRoot)?;
            }
            s => {
                stack.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &stack {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
