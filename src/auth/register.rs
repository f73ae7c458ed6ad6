//! Self-service sign-up (`[registration]`): the password policy and the
//! checks before a user is inserted into the MySQL users table.

/// Passwords too common to accept whatever their length (the top of the
/// usual breach lists that reach 8+ characters).
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "qwerty123",
    "11111111",
    "00000000",
    "abc12345",
    "letmein1",
    "trustno1",
    "passw0rd",
    "correcthorsebatterystaple",
    "123123123",
    "1q2w3e4r5t",
    "zaq12wsx",
    "superman",
    "starwars",
];

/// Every reason `password` is refused (empty when it is acceptable).
pub(crate) fn password_problems(
    password: &str,
    username: &str,
    email: &str,
    min: usize,
    max: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let chars = password.chars().count();
    if chars < min {
        problems.push(format!("must be at least {min} characters"));
    }
    if chars > max {
        problems.push(format!("must be at most {max} characters"));
    }
    // bcrypt reads 72 bytes; longer passwords could never sign in.
    if password.len() > 72 {
        problems.push("must be at most 72 bytes (multi-byte characters count more)".to_string());
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        problems.push("is one of the most common passwords".to_string());
    }
    let local_part = email.split('@').next().unwrap_or("");
    for (what, value) in [("username", username), ("email", local_part)] {
        if value.chars().count() >= 3 && lower.contains(&value.to_lowercase()) {
            problems.push(format!("must not contain the {what}"));
        }
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if chars > 0 && distinct.len() < 4 {
        problems.push("must use more than a few different characters".to_string());
    }
    if password.chars().any(char::is_control) {
        problems.push("must not contain control characters".to_string());
    }
    problems
}

/// Problems with the username or email themselves.
pub(crate) fn identity_problems(username: &str, email: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let username_ok = (3..=64).contains(&username.chars().count())
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !username_ok {
        problems.push("username must be 3 to 64 letters, digits, '.', '_' or '-'".to_string());
    }
    let email_ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if !email_ok {
        problems.push("email must be an address like name@example.com".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(password: &str) -> Vec<String> {
        password_problems(password, "alice", "alice@example.com", 12, 128)
    }

    #[test]
    fn a_long_unusual_password_passes() {
        assert!(problems("violet-harbour-tunes-42").is_empty());
    }

    #[test]
    fn every_reason_is_reported() {
        let p = problems("alice");
        assert!(p.iter().any(|r| r.contains("at least 12")), "{p:?}");
        assert!(p.iter().any(|r| r.contains("username")), "{p:?}");
        assert!(problems("password123").iter().any(|r| r.contains("common")));
        assert!(problems("aaaaaaaaaaaaaaaa")
            .iter()
            .any(|r| r.contains("different")));
        assert!(problems(&"x".repeat(200))
            .iter()
            .any(|r| r.contains("at most 128")));
    }

    #[test]
    fn usernames_and_emails_are_checked() {
        assert!(identity_problems("alice", "alice@example.com").is_empty());
        assert_eq!(identity_problems("a", "nope").len(), 2);
        assert_eq!(identity_problems("bad name", "x@example.com").len(), 1);
    }
}
