//! HTML pages portcullis serves itself: sign-in, sign-out, the account page,
//! second-factor pages,
//! password reset, notices (a mailed link's outcome) and error pages,
//! rendered with minijinja from templates embedded in the binary (no
//! external assets, no JavaScript). `login.template` replaces the sign-in
//! page; it may extend the built-in `layout.html`.

pub(crate) mod describe;

mod mfa;

use std::path::Path;

use minijinja::{context, Environment};
use serde::Serialize;

pub use mfa::{MfaCodeView, MfaSetupView, MfaStatusView};

const LAYOUT: &str = include_str!("templates/layout.html");
const LOGIN: &str = include_str!("templates/login.html");
const LOGOUT: &str = include_str!("templates/logout.html");
const SSO_SWITCH: &str = include_str!("templates/sso_switch.html");
const ERROR: &str = include_str!("templates/error.html");
const RESET: &str = include_str!("templates/reset.html");
const RESET_CONFIRM: &str = include_str!("templates/reset_confirm.html");
const NOTICE: &str = include_str!("templates/notice.html");
const ACCOUNT: &str = include_str!("templates/account.html");
const MFA: &str = include_str!("templates/mfa.html");
const MFA_SETUP: &str = include_str!("templates/mfa_setup.html");
const MFA_STATUS: &str = include_str!("templates/mfa_status.html");
const MFA_RECOVERY: &str = include_str!("templates/mfa_recovery.html");

/// What the sign-in form shows.
#[derive(Debug, Default, Serialize)]
pub struct LoginView<'a> {
    pub action: &'a str,
    pub csrf_token: &'a str,
    pub next: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// `{prefix}/reset` when password reset is configured.
    pub reset_url: Option<&'a str>,
}

/// What the "forgot password" form shows.
#[derive(Debug, Serialize)]
pub(crate) struct ResetView<'a> {
    pub(crate) action: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) login: &'a str,
    pub(crate) login_url: &'a str,
    pub(crate) error: Option<&'a str>,
}

/// What the new-password form behind a reset link shows.
#[derive(Debug, Serialize)]
pub(crate) struct ResetConfirmView<'a> {
    pub(crate) action: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) username: &'a str,
    /// Why the last try was refused (the password policy).
    pub(crate) reasons: &'a [String],
    pub(crate) min: usize,
    pub(crate) max: usize,
}

/// What the SSO account-switch page shows.
#[derive(Debug, Serialize)]
pub struct SsoSwitchView<'a> {
    pub action: &'a str,
    pub current: &'a str,
    pub incoming: &'a str,
    pub handoff: &'a str,
    pub csrf_token: &'a str,
    /// Where "stay signed in" leads: the validated `next`.
    pub stay: &'a str,
    /// The signed-in user's account page.
    pub account_url: &'a str,
}

/// What the account page shows.
#[derive(Debug, Serialize)]
pub(crate) struct AccountView<'a> {
    pub(crate) username: &'a str,
    pub(crate) email: &'a str,
    pub(crate) roles: &'a [String],
    /// The user's live sessions, the current one first.
    pub(crate) sessions: Vec<SessionView>,
    /// The token every form of the page carries.
    pub(crate) csrf_token: &'a str,
    pub(crate) revoke_action: &'a str,
    /// `None` when passwords cannot be changed (no `password_update`).
    pub(crate) password_action: Option<&'a str>,
    /// `registration.password_min` / `password_max`, for the form's hints.
    pub(crate) password_min: usize,
    pub(crate) password_max: usize,
    pub(crate) logout_url: &'a str,
    /// Whether the user has a second factor turned on.
    pub(crate) mfa_enabled: bool,
    /// A role of the user is in `mfa.required_roles`: it cannot be turned off.
    pub(crate) mfa_required: bool,
    /// `{prefix}/mfa/setup?next={prefix}/account`.
    pub(crate) mfa_setup_url: &'a str,
    /// `{prefix}/mfa/disable`.
    pub(crate) mfa_disable_action: &'a str,
    /// `{prefix}/account`, where the second-factor forms return.
    pub(crate) account_url: &'a str,
    /// One fixed sentence about what the last form did.
    pub(crate) notice: Option<&'a str>,
    /// Why the last form was refused...
    pub(crate) alert: Option<&'a str>,
    /// ...and every reason, one sentence each.
    pub(crate) reasons: &'a [String],
}

/// One session in the account page's list.
#[derive(Debug, Serialize)]
pub(crate) struct SessionView {
    /// The public id (`X-Auth-Session`), never the token.
    pub(crate) id: String,
    pub(crate) current: bool,
    /// "Firefox on Linux".
    pub(crate) browser: String,
    /// The raw `User-Agent`, for a tooltip.
    pub(crate) user_agent: String,
    pub(crate) ip: String,
    /// "password" or "sso".
    pub(crate) method: &'static str,
    /// "2024-05-01 14:03 UTC".
    pub(crate) created: String,
    /// RFC 3339, for the `<time>` element.
    pub(crate) created_iso: String,
    /// "5 minutes ago".
    pub(crate) last_seen: String,
}

pub struct Pages {
    env: Environment<'static>,
    title: String,
}

impl Pages {
    /// Loads the templates; a custom login template that does not parse is
    /// an error naming `login.template`.
    pub fn new(title: &str, custom_login: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_formatter(html_formatter);
        env.add_template("layout.html", LAYOUT)?;
        env.add_template("logout.html", LOGOUT)?;
        env.add_template("error.html", ERROR)?;
        env.add_template("sso_switch.html", SSO_SWITCH)?;
        env.add_template("reset.html", RESET)?;
        env.add_template("reset_confirm.html", RESET_CONFIRM)?;
        env.add_template("notice.html", NOTICE)?;
        env.add_template("account.html", ACCOUNT)?;
        env.add_template("mfa.html", MFA)?;
        env.add_template("mfa_setup.html", MFA_SETUP)?;
        env.add_template("mfa_status.html", MFA_STATUS)?;
        env.add_template("mfa_recovery.html", MFA_RECOVERY)?;
        match custom_login {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("login.template: cannot read {}: {e}", path.display())
                })?;
                env.add_template_owned("login.html", text)
                    .map_err(|e| anyhow::anyhow!("login.template: {}: {e}", path.display()))?;
            }
            None => env.add_template("login.html", LOGIN)?,
        }
        Ok(Self {
            env,
            title: title.to_string(),
        })
    }

    pub fn login(&self, view: &LoginView<'_>) -> String {
        self.render(
            "login.html",
            context! { title => &self.title, ..minijinja::Value::from_serialize(view) },
        )
    }

    /// The sign-out page; `account_url` links a signed-in user to their
    /// account page.
    pub fn logout(
        &self,
        action: &str,
        csrf_token: &str,
        username: &str,
        account_url: Option<&str>,
    ) -> String {
        self.render(
            "logout.html",
            context! { title => "Sign out", action, csrf_token, username, account_url },
        )
    }

    /// The signed-in user's own page.
    pub(crate) fn account(&self, view: &AccountView<'_>) -> String {
        self.render(
            "account.html",
            context! { title => "Your account", wide => true, ..minijinja::Value::from_serialize(view) },
        )
    }

    /// The page an SSO hand-off shows instead of silently replacing the
    /// live session of another user.
    pub fn sso_switch(&self, view: &SsoSwitchView<'_>) -> String {
        self.render(
            "sso_switch.html",
            context! { title => "Switch account", ..minijinja::Value::from_serialize(view) },
        )
    }

    /// The "forgot password" form.
    pub(crate) fn reset(&self, view: &ResetView<'_>) -> String {
        self.render(
            "reset.html",
            context! { title => "Reset your password", ..minijinja::Value::from_serialize(view) },
        )
    }

    /// The new-password form behind a reset link.
    pub(crate) fn reset_confirm(&self, view: &ResetConfirmView<'_>) -> String {
        self.render(
            "reset_confirm.html",
            context! { title => "Choose a new password", ..minijinja::Value::from_serialize(view) },
        )
    }

    /// A heading, a sentence and an optional button-styled link: what a
    /// mailed link or a reset request led to.
    pub(crate) fn notice(
        &self,
        heading: &str,
        message: &str,
        link: Option<(&str, &str)>,
    ) -> String {
        let (link_url, link_text) = link.unzip();
        self.render(
            "notice.html",
            context! { title => heading, heading, message, link_url, link_text },
        )
    }

    /// An error page; `account_url` is set where the user is known (a
    /// signed-in user refused a page).
    pub fn error(
        &self,
        status: u16,
        heading: &str,
        message: &str,
        request_id: &str,
        account_url: Option<&str>,
    ) -> String {
        self.render(
            "error.html",
            context! { title => heading, status, heading, message, request_id, account_url },
        )
    }

    /// Renders a template; a failure (only possible with a broken custom
    /// template) is logged and a minimal page is served instead.
    fn render(&self, name: &str, ctx: minijinja::Value) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(template = name, error = %e, "page template failed to render");
                "<!doctype html><title>Error</title><p>This page is temporarily unavailable.</p>"
                    .to_string()
            }
        }
    }
}

/// HTML-escapes strings as Jinja2's markupsafe does (`&`, `<`, `>`, `"`,
/// `'`), leaving `/` alone: links read as written (`href="/auth/reset"`),
/// where minijinja's default writes `&#x2f;`. Everything else as default.
pub(crate) fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    use std::fmt::Write as _;
    match value.as_str() {
        Some(text) if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() => {
            for c in text.chars() {
                match c {
                    '&' => out.write_str("&amp;"),
                    '<' => out.write_str("&lt;"),
                    '>' => out.write_str("&gt;"),
                    '"' => out.write_str("&quot;"),
                    '\'' => out.write_str("&#39;"),
                    c => out.write_char(c),
                }
                .map_err(minijinja::Error::from)?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

#[cfg(test)]
mod tests;
