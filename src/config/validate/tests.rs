//! Loading whole files: defaults, errors that name keys, checks across sections.

use crate::config::Config;
use std::path::Path;

fn errors(toml: &str) -> String {
    Config::from_toml(toml, Path::new("."))
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_file_gives_safe_defaults() {
    let c = Config::from_toml("", Path::new(".")).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.session.cookie_name, "__Host-portcullis");
    assert_eq!(c.session.idle_timeout.as_secs(), 30 * 60);
    assert_eq!(c.login.prefix, "/auth");
    assert!(c.server.public_url.is_none());
}

#[test]
fn unknown_key_is_refused_by_name() {
    let err = errors("[session]\nidle_timout = \"5m\"\n");
    assert!(err.contains("idle_timout"), "{err}");
}

#[test]
fn bad_duration_names_key_and_value() {
    let err = errors("[session]\nidle_timeout = \"soon\"\n");
    assert!(err.contains("session.idle_timeout: \"soon\""), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = errors(
        "[server]\nlisten = \"nowhere\"\n[session]\nsame_site = \"none\"\n[login]\nip_rate = \"fast\"\n",
    );
    assert!(err.contains("server.listen"), "{err}");
    assert!(err.contains("session.same_site"), "{err}");
    assert!(err.contains("login.ip_rate"), "{err}");
}

/// serde stops at the first value it refuses; each is taken out and typing
/// runs again, so bad durations and words are all reported, with the rest.
#[test]
fn every_refused_value_is_reported_with_the_other_problems() {
    let err = errors(
        "[session]\nidle_timeout = \"soon\"\nstore = \"redis\"\n[tokens]\naccess_ttl = 5\n\
         [[route]]\npath = \"/a\"\naccess = \"open\"\n[[route]]\npath = \"b\"\n\
         [login]\nprefx = \"/x\"\nip_rate = \"fast\"\n",
    );
    for key in [
        "session.idle_timeout: \"soon\"",
        "session.store: ",
        "tokens.access_ttl: ",
        "route[0].access: ",
        "route[1].path: ",
        "login.prefx: ",
        "login.ip_rate: ",
    ] {
        assert!(err.contains(key), "{key}: {err}");
    }
}

/// A refused list element takes its list out, a refused key its table
/// cannot do without the table; either is reported once, and the rest of
/// the file is still checked.
#[test]
fn a_refused_list_element_or_required_key_is_reported_once() {
    for (toml, key) in [
        ("[server]\ntrusted_proxies = [\"10.0.0.0/8\", 1]", "server.trusted_proxies[1]: "),
        ("[[route]]\npath = 1", "route[0].path: "),
        ("[[route]]\nmethods = [\"GET\"]", "route[0]: missing field `path`"),
        ("[[sso.partners]]\nname = \"p\"\nissuer = \"i\"\naudience = \"a\"\nalgorithms = [\"none\"]", "sso.partners[0].algorithms[0]: "),
    ] {
        let err = errors(&format!("{toml}\n[admin]\nlisten = \"nowhere\"\n"));
        assert_eq!(err.lines().count(), 2, "{err}");
        assert!(err.contains(key), "{err}");
        assert!(err.contains("admin.listen"), "{err}");
    }
}

#[test]
fn same_site_none_is_refused_by_name() {
    let err = errors("[session]\nsame_site = \"none\"\n");
    assert!(err.contains("session.same_site: "), "{err}");
    assert!(err.contains("\"none\" would send"), "{err}");
    let c = Config::from_toml("[session]\nsame_site = \"Strict\"\n", Path::new(".")).unwrap();
    assert_eq!(c.session.same_site, crate::config::SameSite::Strict);
}

#[test]
fn unknown_words_name_key_and_value() {
    for (toml, key, value) in [
        ("[session]\nstore = \"redis\"", "session.store", "redis"),
        ("[log]\nformat = \"xml\"", "log.format", "xml"),
        (
            "[credentials]\nbackend = \"ldap\"",
            "credentials.backend",
            "ldap",
        ),
        (
            "[tokens]\nalgorithm = \"RS256\"",
            "tokens.algorithm",
            "RS256",
        ),
        (
            "[upstream.assertion]\nalgorithm = \"PS256\"\naudience = \"a\"",
            "upstream.assertion.algorithm",
            "PS256",
        ),
        (
            "[[route]]\npath = \"/a\"\n[[route]]\npath = \"/b\"\naccess = \"open\"",
            "route[1].access",
            "open",
        ),
    ] {
        let err = errors(toml);
        assert!(err.contains(&format!("{key}: ")), "{toml}: {err}");
        assert!(err.contains(value), "{toml}: {err}");
    }
}

#[test]
fn interpolated_durations_and_words_are_typed_after_substitution() {
    let env = |name: &str| match name {
        "IDLE" => Some("45m".to_string()),
        "STORE" => Some("postgres".to_string()),
        "SOON" => Some("soon".to_string()),
        _ => None,
    };
    let text = "[session]\nidle_timeout = \"${IDLE}\"\nstore = \"${STORE}\"\n";
    let c = Config::from_toml_with_env(text, Path::new(""), &env).unwrap();
    assert_eq!(c.session.idle_timeout.as_secs(), 45 * 60);
    assert_eq!(c.session.store, crate::config::SessionStoreKind::Postgres);
    let text = "[session]\nidle_timeout = \"${SOON}\"\n";
    let err = Config::from_toml_with_env(text, Path::new(""), &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("session.idle_timeout: "), "{err}");
    assert!(err.contains("\"soon\""), "{err}");
}

#[test]
fn zero_durations_are_refused_where_they_must_be_positive() {
    let err = errors("[session]\nrecheck_interval = \"0s\"\n[login]\nhash_wait = \"0s\"\n");
    assert!(
        err.contains("session.recheck_interval: \"0s\" must be longer than zero"),
        "{err}"
    );
    assert!(err.contains("login.hash_wait"), "{err}");
    assert!(Config::from_toml("[session]\ncache_ttl = \"0s\"\n", Path::new(".")).is_ok());
}

#[test]
fn bad_route_names_its_index() {
    let err = errors("[[route]]\npath = \"/a\"\n[[route]]\npath = \"no-slash\"\n");
    assert!(err.contains("route[1].path"), "{err}");
}

#[test]
fn public_url_with_path_is_refused() {
    let err = errors("[server]\npublic_url = \"https://x.example/app\"\n");
    assert!(err.contains("server.public_url"), "{err}");
}

#[test]
fn assertion_secret_equal_to_token_secret_is_refused() {
    let secret = "s".repeat(40);
    let err = errors(&format!(
        "[tokens]\nsecret = \"{secret}\"\n[upstream.assertion]\nalgorithm = \"HS256\"\nsecret = \"{secret}\"\naudience = \"app\"\n"
    ));
    assert!(err.contains("upstream.assertion.secret"), "{err}");
}

#[test]
fn hardening_limits_have_safe_defaults() {
    let c = Config::from_toml("", Path::new(".")).unwrap();
    assert_eq!(c.server.body_read_timeout.as_secs(), 30);
    assert_eq!(c.server.keepalive_timeout.as_secs(), 75);
    assert_eq!(c.server.h2_max_streams, 100);
    assert_eq!(c.upstream.max_connections, 1024);
    assert_eq!(c.upstream.tunnel_idle_timeout.as_secs(), 600);
    assert_eq!(c.login.hash_wait.as_secs(), 5);
    assert_eq!(c.postgres.connect_timeout.as_secs(), 10);
    assert_eq!(c.forward_auth.uri_header, "x-forwarded-uri");
    assert_eq!(c.audit.retention.as_secs(), 90 * 86400);
}

#[test]
fn websocket_origin_must_be_an_origin() {
    let err = errors("[server]\nwebsocket_origins = [\"https://ok.example\", \"nope\"]\n");
    assert!(err.contains("server.websocket_origins[1]"), "{err}");
}

#[test]
fn idle_longer_than_absolute_is_refused() {
    let err = errors("[session]\nidle_timeout = \"13h\"\n");
    assert!(err.contains("session.idle_timeout"), "{err}");
}

/// Every key of SPEC's example that needs no file on disk, as written there.
#[test]
fn the_account_and_store_keys_are_accepted() {
    let c = Config::from_toml(
        r#"
[server]
public_url = "https://app.example.com"
[upstream.headers]
session = "X-Auth-Session"
[session]
store = "sqlite"
[sqlite]
path = "portcullis.db"
[credentials]
backend = "mysql"
[credentials.mysql]
url = "mysql://reader:pw@127.0.0.1/app"
rehash_update = "UPDATE users SET password_hash = ? WHERE id = ?"
password_update = "UPDATE users SET password_hash = ? WHERE id = ?"
login_update = "UPDATE users SET last_login = NOW() WHERE id = ?"
[registration]
enabled = true
insert = "INSERT INTO users (username, email, password_hash) VALUES (?, ?, ?)"
verify_email = true
activate = "UPDATE users SET is_active = 1 WHERE id = ?"
[mfa]
required_roles = ["therapist", "admin"]
issuer = "portcullis"
secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[mail]
smtp = "smtp://127.0.0.1:25"
from = "portcullis <no-reply@example.com>"
reset_ttl = "30m"
"#,
        Path::new("/etc/portcullis"),
    )
    .unwrap();
    assert_eq!(c.upstream.headers.session.as_str(), "x-auth-session");
    assert_eq!(
        c.sqlite.path,
        std::path::PathBuf::from("/etc/portcullis/portcullis.db")
    );
    assert_eq!(c.mfa.required_roles, ["therapist", "admin"]);
    assert_eq!(c.mfa.secret_key.unwrap()[31], 31);
    let mail = c.mail.unwrap();
    assert_eq!(mail.reset_ttl.as_secs(), 30 * 60);
    let registration = c.registration.unwrap();
    assert!(registration.activate.is_some());
}

#[test]
fn defaults_of_the_account_keys() {
    let c = Config::from_toml("", Path::new("")).unwrap();
    assert_eq!(c.session.store, crate::config::SessionStoreKind::Sqlite);
    assert_eq!(c.sqlite.path, std::path::PathBuf::from("portcullis.db"));
    assert_eq!(c.upstream.headers.session.as_str(), "x-auth-session");
    assert!(c.mail.is_none());
    assert!(c.mfa.secret_key.is_none());
    assert_eq!(c.mfa.issuer, "portcullis");
}

#[test]
fn relative_paths_are_resolved_from_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        "[[user]]\nid = \"1\"\nusername = \"u\"\nemail = \"u@example.com\"\npassword_hash = \"x\"\nroles = []\n",
    )
    .unwrap();
    let text = "[credentials.file]\npath = \"users.toml\"\n[sqlite]\npath = \"state/p.db\"\n";
    let c = Config::from_toml(text, dir.path()).unwrap();
    let crate::config::CredentialsConfig::File { path } = &c.credentials else {
        panic!("file backend expected");
    };
    assert_eq!(path, &dir.path().join("users.toml"));
    assert_eq!(c.sqlite.path, dir.path().join("state/p.db"));
    // Absolute paths are left alone.
    let c = Config::from_toml("[sqlite]\npath = \"/var/lib/p.db\"\n", dir.path()).unwrap();
    assert_eq!(c.sqlite.path, std::path::PathBuf::from("/var/lib/p.db"));
}

#[test]
fn bad_account_keys_are_named() {
    let err = errors(
        "[mfa]\nsecret_key = \"c2hvcnQ=\"\nissuer = \"a:b\"\n[mail]\nsmtp = \"http://x\"\nfrom = \"nobody\"\n\
         [credentials]\nbackend = \"mysql\"\n[credentials.mysql]\nurl = \"mysql://r@h/app\"\n\
         password_update = \"UPDATE users SET password_hash = ?\"\nlogin_update = \"UPDATE users SET x = ? WHERE id = ?\"\n",
    );
    for key in [
        "mfa.secret_key",
        "mfa.issuer",
        "mail.smtp",
        "mail.from",
        "credentials.mysql.password_update",
        "credentials.mysql.login_update",
    ] {
        assert!(err.contains(key), "{key} missing in {err}");
    }
    assert!(
        !err.contains("c2hvcnQ"),
        "the key's value is not echoed: {err}"
    );
}

#[test]
fn address_verification_needs_mail_and_an_activate_statement() {
    let err = errors(
        "[credentials]\nbackend = \"mysql\"\n[credentials.mysql]\nurl = \"mysql://r@h/app\"\n\
         [registration]\nenabled = true\ninsert = \"INSERT INTO users VALUES (?, ?, ?)\"\nverify_email = true\n",
    );
    assert!(err.contains("registration.activate"), "{err}");
    assert!(err.contains("registration.verify_email"), "{err}");
}

#[test]
fn mail_needs_a_public_url_for_its_links() {
    let err = errors("[mail]\nfrom = \"portcullis <no-reply@example.com>\"\n");
    assert!(err.contains("server.public_url"), "{err}");
}

/// Sign-up with SSO partners that identify users by email: refused unless
/// new addresses are verified (an unverified account stays inactive).
#[test]
fn sso_by_email_with_sign_up_needs_address_verification() {
    let base = "[server]\npublic_url = \"https://app.example.com\"\n\
         [credentials]\nbackend = \"mysql\"\n[credentials.mysql]\nurl = \"mysql://r@h/app\"\n\
         [[sso.partners]]\nname = \"p\"\nissuer = \"https://p.example\"\naudience = \"growbal\"\n\
         algorithms = [\"HS256\"]\nsecret = \"0123456789abcdef0123456789abcdef\"\nuser_claim = \"email\"\n\
         [registration]\nenabled = true\ninsert = \"INSERT INTO users VALUES (?, ?, ?)\"\n";
    let err = errors(base);
    assert!(err.contains("sso.partners[0].user_claim"), "{err}");
    let verified = format!(
        "{base}verify_email = true\nactivate = \"UPDATE users SET is_active = 1 WHERE id = ?\"\n\
         [mail]\nfrom = \"portcullis <no-reply@example.com>\"\n"
    );
    Config::from_toml(&verified, Path::new(".")).unwrap();
}

/// A partner's own users (`require_known_user = false`) have no second
/// factor here to ask for.
#[test]
fn partner_require_mfa_needs_known_users() {
    let partner = |known: bool| {
        format!(
            "[[sso.partners]]\nname = \"p\"\nissuer = \"https://p.example\"\naudience = \"growbal\"\n\
             algorithms = [\"HS256\"]\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
             require_known_user = {known}\nrequire_mfa = true\n"
        )
    };
    let err = errors(&partner(false));
    assert!(err.contains("sso.partners[0].require_mfa"), "{err}");
    let config = Config::from_toml(&partner(true), Path::new(".")).unwrap();
    assert!(config.sso[0].require_mfa);
}

#[test]
fn the_password_policy_is_checked_wherever_users_choose_passwords() {
    let mysql =
        "[credentials]\nbackend = \"mysql\"\n[credentials.mysql]\nurl = \"mysql://r@h/app\"\n";
    let short = "[registration]\npassword_min = 4\n";
    // Nobody chooses a password: the unused bounds are not checked.
    let c = Config::from_toml(&format!("{mysql}{short}"), Path::new(".")).unwrap();
    assert_eq!((c.password_policy.min, c.password_policy.max), (4, 128));
    // A password change through password_update applies them.
    let update = "password_update = \"UPDATE users SET password_hash = ? WHERE id = ?\"\n";
    let err = errors(&format!("{mysql}{update}{short}"));
    assert!(err.contains("registration.password_min"), "{err}");
    let c = Config::from_toml(&format!("{mysql}{update}"), Path::new(".")).unwrap();
    assert_eq!((c.password_policy.min, c.password_policy.max), (12, 128));
}
