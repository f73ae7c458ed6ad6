//! SSO hand-offs from partner sites, and the account-switch page shown
//! instead of silently replacing another user's session.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::login::{start_session, TOO_MANY};
use super::{over_ip_rate, rate_limited_json, read_form_body, set_retry_after};
use crate::app::App;
use crate::auth::mfa::SecondStep;
use crate::auth::sso::SsoError;
use crate::policy::next::validate_next;
use crate::store::{AuthMethod, Identity};
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

#[derive(Deserialize, Default)]
struct SsoQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// `GET {prefix}/sso?token=JWT&next=PATH`: a partner's hand-off, then as a
/// successful login. The token is never logged.
pub(crate) async fn sso(
    app: &App,
    req: &Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let query: SsoQuery =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let next = validate_next(&query.next);
    // Counted before the token is looked at, so a limited attempt does not
    // spend a good hand-off.
    if let Some(wait) = over_ip_rate(app, origin, "sso_rate_limited").await? {
        let mut response = if crate::web::response::wants_html(req.headers()) {
            let page = app.pages.error(
                StatusCode::TOO_MANY_REQUESTS.as_u16(),
                "Too many sign-in attempts",
                TOO_MANY,
                &origin.request_id,
                None,
            );
            response::html(StatusCode::TOO_MANY_REQUESTS, page)
        } else {
            rate_limited_json(wait)
        };
        set_retry_after(&mut response, wait);
        return Ok(response);
    }
    let refuse = |reason: String, user: &str| {
        app.auth
            .audit("sso_refused", user, origin.client_ip, &origin.request_id);
        ProxyError::SsoRefused(reason)
    };
    let handoff = match app.auth.sso.verify(&query.token).await {
        Ok(handoff) => handoff,
        Err(SsoError::Store(e)) => return Err(e.into()),
        Err(SsoError::Refused(reason)) => return Err(refuse(reason, "")),
    };
    // A user of our own credentials (as opposed to a partner's own user).
    let known = handoff.partner.require_known_user;
    let identity = if known {
        match app.auth.credentials.find_by_login(&handoff.user).await? {
            Some(user) if user.active => user.identity,
            _ => return Err(refuse("not a known active user".into(), &handoff.user)),
        }
    } else {
        // Namespaced by partner, so a partner's "1" is never local user 1.
        Identity {
            id: format!("{}:{}", handoff.partner.name, handoff.user),
            username: handoff.user.clone(),
            email: handoff.email.clone().unwrap_or_default(),
            roles: Vec::new(),
        }
    };
    app.auth.audit(
        "sso_ok",
        &identity.username,
        origin.client_ip,
        &origin.request_id,
    );
    if handoff.partner.require_mfa {
        // As after a password: no session until the second factor, which
        // also stands for the account switch's confirmation.
        match app.auth.mfa.second_step(&identity).await? {
            SecondStep::None => {}
            step => {
                let enrol = step == SecondStep::Enrol;
                return super::mfa::begin(app, &identity, &next, enrol, AuthMethod::Sso);
            }
        }
    }
    if let Some(current) = app
        .auth
        .session_of(&app.cookies.session_tokens(req.headers()))
        .await?
    {
        if current.identity.id != identity.id {
            // A link can be planted by anyone: never swap a live session
            // for another account without the user saying so.
            return switch_page(app, &current, &identity, known, &next);
        }
    }
    if known {
        app.auth.record_login(&identity.id);
    }
    start_session(app, req.headers(), origin, identity, AuthMethod::Sso, &next).await
}

/// How long the account-switch page of an SSO hand-off stays usable.
const SWITCH_TTL_SECS: u64 = 300;

/// An SSO hand-off waiting for the signed-in user to confirm the switch,
/// carried in the switch page's form and bound to that session by a MAC.
#[derive(serde::Serialize, Deserialize)]
struct PendingSwitch {
    id: String,
    username: String,
    email: String,
    roles: Vec<String>,
    next: String,
    exp: u64,
    /// A user of our own credentials: `login_update` runs for them.
    /// (Absent from a page served before this field existed.)
    #[serde(default)]
    known: bool,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn switch_page(
    app: &App,
    current: &crate::store::SessionRecord,
    incoming: &Identity,
    known: bool,
    next: &str,
) -> Result<Response<Body>, ProxyError> {
    use base64::Engine as _;
    let pending = PendingSwitch {
        id: incoming.id.clone(),
        username: incoming.username.clone(),
        email: incoming.email.clone(),
        roles: incoming.roles.clone(),
        next: next.to_string(),
        exp: unix_now() + SWITCH_TTL_SECS,
        known,
    };
    let json = serde_json::to_vec(&pending).expect("plain struct serializes");
    let handoff = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let csrf_token = app.auth.csrf.switch_token(&current.token_hash, &handoff)?;
    let action = format!("{}/sso", app.config.login.prefix);
    let account_url = super::account_path(app);
    let page = app.pages.sso_switch(&crate::pages::SsoSwitchView {
        account_url: &account_url,
        action: &action,
        current: &current.identity.username,
        incoming: &incoming.username,
        handoff: &handoff,
        csrf_token: &csrf_token,
        stay: next,
    });
    Ok(response::html(StatusCode::OK, page))
}

#[derive(Deserialize)]
struct SwitchForm {
    #[serde(default)]
    handoff: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST {prefix}/sso`: the signed-in user confirms an SSO account switch
/// from the page [`switch_page`] showed them.
pub(crate) async fn sso_switch(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    use base64::Engine as _;
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let form: SwitchForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("switch form is not form-encoded"))?;
    let Some(current) = app
        .auth
        .session_of(&app.cookies.session_tokens(&parts.headers))
        .await?
    else {
        return Err(ProxyError::SsoRefused("no session to switch from".into()));
    };
    if !app
        .auth
        .csrf
        .check_switch(&current.token_hash, &form.handoff, &form.csrf_token)?
    {
        app.auth.audit(
            "sso_switch_csrf_refused",
            &current.identity.username,
            origin.client_ip,
            &origin.request_id,
        );
        return Err(ProxyError::Forbidden);
    }
    let pending: PendingSwitch = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&form.handoff)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(ProxyError::BadRequest("malformed switch form"))?;
    if pending.exp < unix_now() {
        return Err(ProxyError::SsoRefused("account switch page expired".into()));
    }
    let identity = Identity {
        id: pending.id,
        username: pending.username,
        email: pending.email,
        roles: pending.roles,
    };
    app.auth.audit(
        "sso_switch",
        &identity.username,
        origin.client_ip,
        &origin.request_id,
    );
    if pending.known {
        app.auth.record_login(&identity.id);
    }
    let next = validate_next(&pending.next);
    start_session(
        app,
        &parts.headers,
        origin,
        identity,
        AuthMethod::Sso,
        &next,
    )
    .await
}
