use super::*;

#[test]
fn login_page_escapes_and_carries_the_form_fields() {
    let pages = Pages::new("Sign in to <Growbal>", None).unwrap();
    let page = pages.login(&LoginView {
        action: "/auth/login",
        csrf_token: "tok123",
        next: "/chat/?a=1&b=\"2\"",
        username: "<script>",
        error: Some("Incorrect username or password."),
        reset_url: None,
    });
    assert!(!page.contains("Forgot"), "no reset link unless configured");
    assert!(page.contains("tok123"));
    assert!(page.contains("Sign in to &lt;Growbal&gt;"), "title escaped");
    assert!(!page.contains("<script>"), "username escaped");
    assert!(page.contains("Incorrect username or password."));
    assert!(page.contains("name=\"csrf_token\""));
    assert!(page.contains("name=\"next\""));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external assets"
    );
}

/// Every `xxxx-xxxx` shaped word of a page (word characters around a
/// dash, alone between non-word characters).
fn code_shaped(page: &str) -> Vec<&str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = page.as_bytes();
    (0..bytes.len().saturating_sub(8))
        .filter(|&i| {
            let shaped = (0..9).all(|k| {
                if k == 4 {
                    bytes[i + k] == b'-'
                } else {
                    word(bytes[i + k])
                }
            });
            shaped && (i == 0 || !word(bytes[i - 1])) && bytes.get(i + 9).is_none_or(|&b| !word(b))
        })
        .map(|i| &page[i..i + 9])
        .collect()
}

#[test]
fn the_recovery_page_shows_nothing_else_shaped_like_a_code() {
    let pages = Pages::new("Sign in", None).unwrap();
    let codes: Vec<String> = (0..10).map(|i| format!("ab{i}d-efgh")).collect();
    let page = pages.mfa_recovery(&codes, "/chat/");
    assert_eq!(code_shaped(&page), codes);
}

#[test]
fn the_setup_page_shows_the_uri_verbatim_and_an_inline_qr_code() {
    let pages = Pages::new("Sign in", None).unwrap();
    let uri = "otpauth://totp/portcullis:ana?secret=GEZDGNBV&issuer=portcullis";
    let page = pages.mfa_setup(&MfaSetupView {
        action: "/auth/mfa/setup",
        csrf_token: "tok",
        next: "/",
        uri,
        secret: "GEZDGNBV",
        required: false,
        error: None,
    });
    assert!(page.contains(&format!(">{uri}<")), "{page}");
    assert!(page.contains("<svg") && !page.contains("<?xml"));
    let hostile = pages.mfa_setup(&MfaSetupView {
        action: "",
        csrf_token: "",
        next: "",
        uri: "otpauth://totp/<b>",
        secret: "",
        required: false,
        error: None,
    });
    assert!(!hostile.contains("<b>"));
}

fn session(id: &str, current: bool) -> SessionView {
    SessionView {
        id: id.into(),
        current,
        browser: "Firefox on Linux".into(),
        user_agent: "Mozilla/5.0 <x>".into(),
        ip: "192.0.2.7".into(),
        method: "password",
        created: "2024-05-01 14:03 UTC".into(),
        created_iso: "2024-05-01T14:03:07Z".into(),
        last_seen: "just now".into(),
    }
}

#[test]
fn account_page_marks_this_session_and_offers_a_form_per_session() {
    let pages = Pages::new("Sign in", None).unwrap();
    let roles = vec!["patient".to_string()];
    let reasons = ["The new password must be at least 12 characters.".to_string()];
    let view = |password_action| AccountView {
        username: "<demo>",
        email: "demo@example.com",
        roles: &roles,
        sessions: vec![session("this-one", true), session("other-one", false)],
        csrf_token: "tok123",
        revoke_action: "/auth/account/sessions/revoke",
        password_action,
        password_min: 12,
        password_max: 128,
        logout_url: "/auth/logout",
        mfa_enabled: false,
        mfa_required: false,
        mfa_setup_url: "/auth/mfa/setup?next=/auth/account",
        mfa_disable_action: "/auth/mfa/disable",
        account_url: "/auth/account",
        notice: None,
        alert: Some("Your password was not changed."),
        reasons: &reasons,
    };
    let page = pages.account(&view(None));
    assert!(page.contains("This session") && page.contains("Firefox on Linux"));
    assert!(page.contains("this-one") && page.contains("other-one"));
    assert!(page.contains("name=\"session\" value=\"others\""));
    assert_eq!(page.matches("value=\"tok123\"").count(), 3, "every form");
    assert!(page.contains("must be at least 12 characters"));
    assert!(!page.contains("<demo>") && !page.contains("<x>"), "escaped");
    assert!(!page.contains("current_password"), "no password form");
    assert!(page.contains("href=\"/auth/mfa/setup?next=/auth/account\""));
    assert!(!page.contains("<script"), "no JavaScript");
    assert!(!page.contains("http://") && !page.contains("https://"));
    let page = pages.account(&view(Some("/auth/account/password")));
    assert!(page.contains("name=\"current_password\"") && page.contains("name=\"new_password\""));
}

#[test]
fn login_page_links_to_reset_when_configured() {
    let pages = Pages::new("Sign in", None).unwrap();
    let page = pages.login(&LoginView {
        reset_url: Some("/auth/reset"),
        ..LoginView::default()
    });
    assert!(page.contains("href=\"/auth/reset\""), "{page}");
}

#[test]
fn reset_confirm_page_lists_every_reason_escaped() {
    let pages = Pages::new("Sign in", None).unwrap();
    let reasons = vec![
        "must be at least 12 characters".to_string(),
        "<x>".to_string(),
    ];
    let page = pages.reset_confirm(&ResetConfirmView {
        action: "/auth/reset/confirm?token=t",
        csrf_token: "c",
        username: "eve",
        reasons: &reasons,
        min: 12,
        max: 128,
    });
    assert!(page.contains("at least 12 characters") && page.contains("&lt;x&gt;"));
    assert!(page.contains("name=\"new_password\"") && page.contains("name=\"csrf_token\""));
}

#[test]
fn error_page_shows_status_and_request_id() {
    let pages = Pages::new("Sign in", None).unwrap();
    let page = pages.error(403, "Access denied", "No.", "req-42", None);
    assert!(page.contains("403") && page.contains("Access denied") && page.contains("req-42"));
}
