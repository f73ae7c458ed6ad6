//! portcullis' own endpoints under `login.prefix`: the sign-in form and its
//! POST, sign-out (POST only; GET shows a button), and `me`.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{Caller, LoginOutcome};
use crate::app::App;
use crate::pages::LoginView;
use crate::policy::next::validate_next;
use crate::policy::routes::Verdict;
use crate::proxy::body::{is_body_stalled, ReadTimeout};
use crate::proxy::error::ProxyError;
use crate::proxy::forwarded::Origin;
use crate::proxy::headers::set_identity;
use crate::response::{self, Body};
use crate::store::{AuthMethod, Identity};

/// Login and logout bodies over this are refused before any hashing.
pub const FORM_BODY_LIMIT: usize = 16 * 1024;

const GENERIC_FAILURE: &str = "Incorrect username or password.";
const FORM_EXPIRED: &str = "This sign-in form has expired. Please try again.";
const TOO_MANY: &str = "Too many sign-in attempts. Please wait a moment and try again.";

/// Serves a request whose normalized path is under the prefix.
pub async fn handle(
    app: &App,
    req: Request<Incoming>,
    path: &str,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let prefix = &app.config.login.prefix;
    let endpoint = path.strip_prefix(prefix.as_str()).unwrap_or("");
    match (endpoint.trim_end_matches('/'), req.method().clone()) {
        ("/login", Method::GET | Method::HEAD) => login_form(app, &req).await,
        ("/login", Method::POST) => login_submit(app, req, origin).await,
        ("/logout", Method::GET | Method::HEAD) => logout_form(app, &req).await,
        ("/logout", Method::POST) => logout_submit(app, req, origin).await,
        ("/me", Method::GET | Method::HEAD) => me(app, &req).await,
        ("/refresh", Method::POST) => refresh(app, req, origin).await,
        ("/verify", Method::GET | Method::HEAD) => verify(app, &req, origin).await,
        ("/sso", Method::GET) => sso(app, &req, origin).await,
        ("/sso", Method::POST) => sso_switch(app, req, origin).await,
        ("/register", Method::POST) if app.config.registration.is_some() => {
            register(app, req, origin).await
        }
        ("/login" | "/logout" | "/me" | "/refresh" | "/verify" | "/sso", _) => {
            Err(ProxyError::MethodNotAllowed)
        }
        _ => Err(ProxyError::NotFound),
    }
}

fn login_path(app: &App) -> String {
    format!("{}/login", app.config.login.prefix)
}

/// `{prefix}/login?next=...` for a redirect from a protected page.
pub fn login_url(app: &App, next: &str) -> String {
    let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    format!("{}?{query}", login_path(app))
}

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_form(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ProxyError> {
    let query: NextQuery =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let next = validate_next(&query.next);
    if app.auth.session_of(req.headers()).await?.is_some() {
        return Ok(response::redirect(StatusCode::SEE_OTHER, &next));
    }
    render_login(app, req.headers(), StatusCode::OK, &next, "", None)
}

/// The sign-in form, reusing the browser's CSRF nonce cookie when it has one
/// so that other open tabs keep working.
fn render_login(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    let (nonce, fresh) = csrf_nonce_or_new(app, headers);
    let token = app.auth.csrf.login_token(&nonce)?;
    let action = login_path(app);
    let page = app.pages.login(&LoginView {
        action: &action,
        csrf_token: &token,
        next,
        username,
        error,
    });
    let mut response = response::html(status, page);
    if fresh {
        super::cookies::append_set_cookie(response.headers_mut(), app.auth.cookies.csrf(&nonce));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

async fn login_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    if is_json(&parts.headers) {
        return json_login(app, &body, origin).await;
    }
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("login form is not form-encoded"))?;
    let next = validate_next(&form.next);

    let nonce = app.auth.cookies.csrf_nonce(&parts.headers);
    let csrf_ok = match nonce.as_deref() {
        Some(n) => app.auth.csrf.check_login(n, &form.csrf_token)?,
        None => false,
    };
    if !csrf_ok {
        app.auth.audit(
            "login_csrf_refused",
            "",
            origin.client_ip,
            &origin.request_id,
        );
        let mut headers = parts.headers.clone();
        headers.remove(header::COOKIE);
        return render_login(
            app,
            &headers,
            StatusCode::FORBIDDEN,
            &next,
            &form.username,
            Some(FORM_EXPIRED),
        );
    }

    let outcome = app
        .auth
        .password_login(
            form.username.trim(),
            &form.password,
            origin.client_ip,
            &origin.request_id,
        )
        .await?;
    let identity = match outcome {
        LoginOutcome::Success(identity) => identity,
        LoginOutcome::Failed => {
            return render_login(
                app,
                &parts.headers,
                StatusCode::UNAUTHORIZED,
                &next,
                &form.username,
                Some(GENERIC_FAILURE),
            );
        }
        LoginOutcome::RateLimited(wait) => {
            let mut response = render_login(
                app,
                &parts.headers,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &form.username,
                Some(TOO_MANY),
            )?;
            set_retry_after(&mut response, wait);
            return Ok(response);
        }
    };

    start_session(app, &parts.headers, identity, AuthMethod::Password, &next).await
}

/// Signs the browser in: any session it arrived with is discarded (no
/// fixation), a new one is created, and it is sent on to `next`.
async fn start_session(
    app: &App,
    headers: &HeaderMap,
    identity: Identity,
    method: AuthMethod,
    next: &str,
) -> Result<Response<Body>, ProxyError> {
    for token in app.auth.cookies.session_tokens(headers) {
        app.auth
            .sessions
            .revoke(&super::session::hash_token(&token))
            .await?;
    }
    let (token, _) = app.auth.sessions.create(identity, method).await?;
    let mut response = response::redirect(StatusCode::SEE_OTHER, next);
    super::cookies::append_set_cookie(response.headers_mut(), app.auth.cookies.session(&token));
    Ok(response)
}

#[derive(Deserialize)]
struct JsonLogin {
    username: String,
    password: String,
}

/// `POST {prefix}/login` with a JSON body: bearer tokens for API clients.
/// No CSRF token: a cross-site page cannot send `application/json` without
/// a CORS preflight, which portcullis never grants.
async fn json_login(app: &App, body: &[u8], origin: &Origin) -> Result<Response<Body>, ProxyError> {
    let Ok(login) = serde_json::from_slice::<JsonLogin>(body) else {
        return Ok(response::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request"}),
        ));
    };
    let outcome = app
        .auth
        .password_login(
            login.username.trim(),
            &login.password,
            origin.client_ip,
            &origin.request_id,
        )
        .await?;
    match outcome {
        LoginOutcome::Success(identity) => {
            // A new family cannot have been revoked: `None` is impossible here.
            let Some(issued) = app.auth.tokens.issue(&identity, None).await? else {
                return Err(ProxyError::BadRequest("token family refused"));
            };
            Ok(response::json(StatusCode::OK, &serde_json::json!(issued)))
        }
        LoginOutcome::Failed => Ok(response::json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "invalid_credentials"}),
        )),
        LoginOutcome::RateLimited(wait) => {
            let mut response = response::json(
                StatusCode::TOO_MANY_REQUESTS,
                &serde_json::json!({"error": "rate_limited"}),
            );
            set_retry_after(&mut response, wait);
            Ok(response)
        }
    }
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// `POST {prefix}/refresh`: rotates a refresh token.
async fn refresh(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    // Refreshes share the sign-in rate limit: a refresh token is a
    // credential too, and guessing one must cost like guessing a password.
    if let Some(wait) = over_ip_rate(app, origin, "refresh_rate_limited").await? {
        return Ok(rate_limited_json(wait));
    }
    let token = serde_json::from_slice::<RefreshRequest>(&body)
        .map(|r| r.refresh_token)
        .unwrap_or_default();
    match app
        .auth
        .refresh(&token, origin.client_ip, &origin.request_id)
        .await?
    {
        Some(issued) => Ok(response::json(StatusCode::OK, &serde_json::json!(issued))),
        None => Ok(response::json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "invalid_grant"}),
        )),
    }
}

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST {prefix}/register` (JSON or form), when `registration.enabled`:
/// 201, 409 for a taken username or email, 422 with every reason otherwise.
async fn register(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let Some(policy) = &app.config.registration else {
        return Err(ProxyError::NotFound);
    };
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let form: Option<Registration> = if is_json(&parts.headers) {
        serde_json::from_slice(&body).ok()
    } else if same_origin(app, &parts.headers, origin) {
        // A form post must come from our own pages, not a cross-site form.
        serde_urlencoded::from_bytes(&body).ok()
    } else {
        return Err(ProxyError::Forbidden);
    };
    let Some(form) = form else {
        return Ok(response::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request"}),
        ));
    };
    let (username, email) = (form.username.trim(), form.email.trim());
    // Sign-ups share the sign-in rate limit, so they cannot be used to probe.
    if let Some(wait) = app
        .auth
        .throttle
        .login_attempt(&super::rate_key(origin.client_ip), app.config.login.ip_rate)
        .await?
    {
        let mut response = response::json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({"error": "rate_limited"}),
        );
        set_retry_after(&mut response, wait);
        return Ok(response);
    }
    let mut reasons = super::register::identity_problems(username, email);
    reasons.extend(
        super::register::password_problems(
            &form.password,
            username,
            email,
            policy.password_min,
            policy.password_max,
        )
        .into_iter()
        .map(|r| format!("password {r}")),
    );
    if !reasons.is_empty() {
        return Ok(response::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({"error": "invalid_registration", "reasons": reasons}),
        ));
    }
    let taken = json_taken();
    let credentials = &app.auth.credentials;
    if credentials.find_by_login(username).await?.is_some()
        || credentials.find_by_login(email).await?.is_some()
    {
        return Ok(taken);
    }
    let hash = app
        .auth
        .verifier
        .hash(&form.password)
        .await?
        .ok_or(ProxyError::BadRequest("could not hash the password"))?;
    if !credentials
        .insert_user(&policy.insert, username, email, &hash)
        .await?
    {
        return Ok(taken);
    }
    app.auth
        .audit("register", username, origin.client_ip, &origin.request_id);
    Ok(response::json(
        StatusCode::CREATED,
        &serde_json::json!({"username": username, "email": email}),
    ))
}

fn json_taken() -> Response<Body> {
    response::json(StatusCode::CONFLICT, &serde_json::json!({"error": "taken"}))
}

#[derive(Deserialize, Default)]
struct SsoQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// `GET {prefix}/sso?token=JWT&next=PATH`: a partner's hand-off, then as a
/// successful login. The token is never logged.
async fn sso(
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
        let mut response = if crate::response::wants_html(req.headers()) {
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
        Err(super::sso::SsoError::Store(e)) => return Err(e.into()),
        Err(super::sso::SsoError::Refused(reason)) => return Err(refuse(reason, "")),
    };
    let identity = if handoff.partner.require_known_user {
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
    if let Some(current) = app.auth.session_of(req.headers()).await? {
        if current.identity.id != identity.id {
            // A link can be planted by anyone: never swap a live session
            // for another account without the user saying so.
            return switch_page(app, &current, &identity, &next);
        }
    }
    start_session(app, req.headers(), identity, AuthMethod::Sso, &next).await
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
    };
    let json = serde_json::to_vec(&pending).expect("plain struct serializes");
    let handoff = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let csrf_token = app.auth.csrf.switch_token(&current.token_hash, &handoff)?;
    let action = format!("{}/sso", app.config.login.prefix);
    let page = app.pages.sso_switch(&crate::pages::SsoSwitchView {
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
async fn sso_switch(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    use base64::Engine as _;
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let form: SwitchForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("switch form is not form-encoded"))?;
    let Some(current) = app.auth.session_of(&parts.headers).await? else {
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
    let next = validate_next(&pending.next);
    start_session(app, &parts.headers, identity, AuthMethod::Sso, &next).await
}

/// `GET {prefix}/verify`: forward-auth for nginx `auth_request`, Traefik
/// ForwardAuth and Caddy `forward_auth`. The original method and URI come
/// from `forward_auth.method_header` / `uri_header` of a trusted proxy only
/// (see [`super::forward`]); anyone else is judged as `GET /`. The same
/// route rules apply; 200 carries the identity headers.
async fn verify(
    app: &App,
    req: &Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let headers = req.headers();
    let original = super::forward::original_request(
        headers,
        &app.config.forward_auth,
        origin.from_trusted_proxy,
    )
    .map_err(|e| {
        // A trusted proxy sending these wrong is a proxy config to fix.
        tracing::warn!(request_id = %origin.request_id, client = %origin.client_ip, error = %e, "forward-auth request refused");
        ProxyError::BadRequest("forward-auth headers missing, duplicated or malformed")
    })?;
    let path = crate::policy::path::normalize(&original.path)?;
    let routes = app.routes.load_full();
    let access = routes.access(&original.method, &crate::policy::path::routing_path(&path));
    let caller = if access.needs_caller() {
        app.auth.caller(headers).await?
    } else {
        None
    };
    let roles = caller.as_ref().map(|c| c.identity.roles.as_slice());
    match crate::policy::routes::decide(access, roles) {
        Verdict::Allow => {}
        Verdict::Unauthenticated => return Ok(unauthenticated_json()),
        Verdict::Forbidden => return Err(ProxyError::Forbidden),
    }
    let mut response = response::json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    if let Some(caller) = caller {
        set_identity(
            response.headers_mut(),
            &app.config.upstream.headers,
            &caller.identity,
        );
    }
    Ok(response)
}

/// The sign-out page: a button, never a sign-out by GET. Without a session
/// the button just clears the cookie and leads to the sign-in page; its
/// token is then bound to the browser's CSRF nonce, as the sign-in form's.
async fn logout_form(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ProxyError> {
    let session = app.auth.session_of(req.headers()).await?;
    let username = session
        .as_ref()
        .map_or("", |s| s.identity.username.as_str());
    let action = format!("{}/logout", app.config.login.prefix);
    let (token, new_nonce) = match &session {
        Some(session) => (app.auth.csrf.logout_token(&session.token_hash)?, None),
        None => {
            let (nonce, fresh) = csrf_nonce_or_new(app, req.headers());
            (app.auth.csrf.login_token(&nonce)?, fresh.then_some(nonce))
        }
    };
    let page = app.pages.logout(&action, &token, username);
    let mut response = response::html(StatusCode::OK, page);
    if let Some(nonce) = new_nonce {
        super::cookies::append_set_cookie(response.headers_mut(), app.auth.cookies.csrf(&nonce));
    }
    Ok(response)
}

/// The browser's CSRF nonce when it sent a well-formed one, else a new one
/// (`true`: it still has to be set as a cookie).
fn csrf_nonce_or_new(app: &App, headers: &HeaderMap) -> (String, bool) {
    let existing = app.auth.cookies.csrf_nonce(headers).filter(|n| {
        n.len() == 22
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    match existing {
        Some(nonce) => (nonce, false),
        None => (super::csrf::Csrf::new_nonce(), true),
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST {prefix}/logout`. A browser must show the page's CSRF token or a
/// same-origin `Origin`, with or without a session: a cross-site POST
/// carries no `SameSite=Lax` cookie but its response's `Set-Cookie` would
/// still apply, so answering it would let any site sign users out. A
/// bearer client's `Authorization` header is proof enough (no browser
/// sends one cross-site on its own).
async fn logout_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let caller = app.auth.caller(&parts.headers).await?;
    let bearer = caller.as_ref().is_some_and(|c| c.bearer);
    if !bearer && !same_origin(app, &parts.headers, origin) {
        let token = serde_urlencoded::from_bytes::<LogoutForm>(&body)
            .map(|f| f.csrf_token)
            .unwrap_or_default();
        let token_ok = match caller.as_ref().and_then(|c| c.session.as_ref()) {
            Some(session) => app.auth.csrf.check_logout(session, &token)?,
            None => match app.auth.cookies.csrf_nonce(&parts.headers) {
                Some(nonce) => app.auth.csrf.check_login(&nonce, &token)?,
                None => false,
            },
        };
        if !token_ok {
            let user = caller.as_ref().map_or("", |c| c.identity.username.as_str());
            app.auth.audit(
                "logout_csrf_refused",
                user,
                origin.client_ip,
                &origin.request_id,
            );
            return Err(ProxyError::Forbidden);
        }
    }
    if let Some(caller) = &caller {
        if let Some(family) = &caller.family {
            app.auth.tokens.revoke_family(family).await?;
        }
        if let Some(session) = &caller.session {
            app.auth.sessions.revoke(session).await?;
        }
        app.auth.audit(
            "logout",
            &caller.identity.username,
            origin.client_ip,
            &origin.request_id,
        );
    }
    let mut response = response::redirect(StatusCode::SEE_OTHER, &login_path(app));
    super::cookies::append_set_cookie(response.headers_mut(), app.auth.cookies.clear_session());
    Ok(response)
}

/// True when the browser says the request comes from our own origin.
fn same_origin(app: &App, headers: &HeaderMap, origin: &Origin) -> bool {
    origin.is_same_origin(headers, app.config.server.public_url.as_ref())
}

async fn me(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ProxyError> {
    match app.auth.caller(req.headers()).await? {
        Some(caller) => Ok(response::json(StatusCode::OK, &me_json(&caller))),
        None => Ok(unauthenticated_json()),
    }
}

fn me_json(caller: &Caller) -> serde_json::Value {
    let expires_at = humantime::format_rfc3339_seconds(caller.expires_at).to_string();
    serde_json::json!({
        "id": caller.identity.id,
        "username": caller.identity.username,
        "email": caller.identity.email,
        "roles": caller.identity.roles,
        "auth_method": caller.auth_method,
        "expires_at": expires_at,
    })
}

/// Counts an attempt against `login.ip_rate` (shared with form and JSON
/// logins); `Some(wait)` when the client is over it, recorded as `event`.
async fn over_ip_rate(
    app: &App,
    origin: &Origin,
    event: &'static str,
) -> Result<Option<std::time::Duration>, ProxyError> {
    let wait = app
        .auth
        .throttle
        .login_attempt(&super::rate_key(origin.client_ip), app.config.login.ip_rate)
        .await?;
    if wait.is_some() {
        app.auth
            .audit(event, "", origin.client_ip, &origin.request_id);
    }
    Ok(wait)
}

/// 429 `{"error":"rate_limited"}` with `Retry-After`.
fn rate_limited_json(wait: std::time::Duration) -> Response<Body> {
    let mut response = response::json(
        StatusCode::TOO_MANY_REQUESTS,
        &serde_json::json!({"error": "rate_limited"}),
    );
    set_retry_after(&mut response, wait);
    response
}

/// `Retry-After` in whole seconds, at least one.
pub fn set_retry_after(response: &mut Response<Body>, wait: std::time::Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

/// 401 for API clients: `WWW-Authenticate: Bearer` and a JSON body.
pub fn unauthenticated_json() -> Response<Body> {
    let mut response = response::json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": "unauthenticated"}),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// Collects a small body, refusing anything over [`FORM_BODY_LIMIT`] before
/// reading it when the length is declared, and as soon as it is exceeded
/// otherwise; a body that stops arriving for `server.body_read_timeout` is
/// answered 408.
async fn read_form_body(
    app: &App,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<bytes::Bytes, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > FORM_BODY_LIMIT as u64) {
        return Err(ProxyError::PayloadTooLarge);
    }
    let timeout = app.config.server.body_read_timeout;
    let body = ReadTimeout::new(body, timeout);
    match Limited::new(body, FORM_BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ProxyError::PayloadTooLarge)
        }
        Err(e) if is_body_stalled(e.as_ref()) => Err(ProxyError::BodyTimeout(timeout)),
        Err(_) => Err(ProxyError::BadRequest("request body could not be read")),
    }
}
