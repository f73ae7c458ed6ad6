//! The text and HTML parts of each mail, from minijinja templates embedded
//! in the binary. A file of the same name in the directory of
//! `login.template` replaces a built-in one: `mail-reset.txt`,
//! `mail-reset.html`, `mail-verify.txt`, `mail-verify.html`, and the HTML
//! parts' `mail-layout.html`.

use std::path::Path;

use minijinja::Environment;

use super::MailKind;

const BUILT_IN: &[(&str, &str)] = &[
    ("mail-layout.html", include_str!("templates/layout.html")),
    ("mail-reset.txt", include_str!("templates/reset.txt")),
    ("mail-reset.html", include_str!("templates/reset.html")),
    ("mail-verify.txt", include_str!("templates/verify.txt")),
    ("mail-verify.html", include_str!("templates/verify.html")),
];

/// What every mail template sees.
#[derive(serde::Serialize)]
pub(crate) struct MailView<'a> {
    pub(crate) subject: &'a str,
    /// The host of `server.public_url`.
    pub(crate) site: &'a str,
    pub(crate) username: &'a str,
    pub(crate) link: &'a str,
    /// How long the link works, in words ("30 minutes").
    pub(crate) valid_for: &'a str,
}

pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by a file of the same name in
    /// `dir` when there is one. A replacement that cannot be read or parsed
    /// is an error naming it.
    pub(crate) fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_formatter(crate::pages::html_formatter);
        for (name, built_in) in BUILT_IN {
            let custom = dir.map(|d| d.join(name)).filter(|p| p.is_file());
            match custom {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        anyhow::anyhow!("login.template: cannot read {}: {e}", path.display())
                    })?;
                    env.add_template_owned(*name, text)
                        .map_err(|e| anyhow::anyhow!("login.template: {}: {e}", path.display()))?;
                }
                None => env.add_template(name, built_in)?,
            }
        }
        Ok(Self { env })
    }

    /// `(text, html)` of one mail.
    pub(crate) fn render(
        &self,
        kind: MailKind,
        view: &MailView<'_>,
    ) -> Result<(String, String), minijinja::Error> {
        let base = match kind {
            MailKind::Reset => "mail-reset",
            MailKind::Verify => "mail-verify",
        };
        let render = |ext: &str| {
            self.env
                .get_template(&format!("{base}.{ext}"))
                .and_then(|t| t.render(view))
        };
        Ok((render("txt")?, render("html")?))
    }
}

/// A link's lifetime in words: "30 minutes", "24 hours", "2 days".
pub(crate) fn in_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs % 86_400 == 0 && secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs % 3600 == 0 && secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 && secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn view<'a>(link: &'a str, username: &'a str) -> MailView<'a> {
        MailView {
            subject: "Reset your password",
            site: "app.example.com",
            username,
            link,
            valid_for: "30 minutes",
        }
    }

    #[test]
    fn both_parts_carry_the_link_and_html_is_escaped() {
        let t = Templates::load(None).unwrap();
        let link = "https://app.example.com/auth/reset/confirm?token=abc";
        let (text, html) = t
            .render(MailKind::Reset, &view(link, "<b>eve</b>"))
            .unwrap();
        assert!(text.contains(link) && text.contains("30 minutes"));
        assert!(text.contains("<b>eve</b>"), "the text part is not HTML");
        assert!(html.contains(link));
        assert!(html.contains("&lt;b&gt;eve&lt;/b&gt;") && !html.contains("<b>eve"));
        let (text, _) = t.render(MailKind::Verify, &view(link, "eve")).unwrap();
        assert!(text.contains("activate"));
    }

    #[test]
    fn a_file_beside_the_login_template_replaces_a_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mail-reset.txt"),
            "Hi {{ username }}: {{ link }}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let (text, html) = t.render(MailKind::Reset, &view("L", "eve")).unwrap();
        assert_eq!(text, "Hi eve: L");
        assert!(
            html.contains("Choose a new password"),
            "others stay built in"
        );
        std::fs::write(dir.path().join("mail-verify.html"), "{% if %}").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(
            err.contains("login.template") && err.contains("mail-verify.html"),
            "{err}"
        );
    }

    #[test]
    fn lifetimes_read_as_words() {
        assert_eq!(in_words(Duration::from_secs(30 * 60)), "30 minutes");
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(86_400)), "1 day");
        assert_eq!(in_words(Duration::from_secs(90)), "90 seconds");
    }
}
