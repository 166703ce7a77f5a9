//! Mail templates: every app's `mail_templates()` compiled once at start-up
//! with minijinja (a syntax error or a name without an English version
//! stops start-up), rendered per message with strict undefined variables,
//! so a missing variable fails the message visibly instead of mailing a
//! blank. HTML parts are auto-escaped; subject and text are not HTML.

use std::collections::HashSet;

use minijinja::{Environment, UndefinedBehavior};
use sen_core::mail::{LOCALES, MailTemplate};

/// The three parts of a rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line (one line).
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// Every template of the binary's apps, compiled.
pub struct Templates {
    env: Environment<'static>,
    names: HashSet<(String, String)>,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No template of that name.
    #[error("no mail template named `{0}`")]
    Unknown(String),
    /// The template failed (a missing variable, a bad filter).
    #[error("template `{0}` failed: {1}")]
    Failed(String, String),
}

impl Templates {
    /// Compiles `templates`; fails naming the first broken one.
    pub fn compile(templates: Vec<MailTemplate>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // `.html` names are auto-escaped by minijinja's default rule.
        let mut names = HashSet::new();
        for t in &templates {
            if !LOCALES.contains(&t.locale) {
                anyhow::bail!(
                    "mail template `{}` has locale `{}`; use one of {}",
                    t.name,
                    t.locale,
                    LOCALES.join(", ")
                );
            }
            if !names.insert((t.name.to_string(), t.locale.to_string())) {
                anyhow::bail!(
                    "mail template `{}` ({}) is declared twice",
                    t.name,
                    t.locale
                );
            }
            for (part, src) in [("subject", t.subject), ("text", t.text), ("html", t.html)] {
                env.add_template_owned(format!("{}.{}.{part}", t.name, t.locale), src.to_string())
                    .map_err(|e| {
                        anyhow::anyhow!("mail template `{}` ({}) {part}: {e}", t.name, t.locale)
                    })?;
            }
        }
        if let Some((name, _)) = names
            .iter()
            .find(|(n, _)| !names.contains(&(n.clone(), LOCALES[0].to_string())))
        {
            anyhow::bail!("mail template `{name}` has no `{}` version", LOCALES[0]);
        }
        Ok(Self { env, names })
    }

    /// Whether a template of that name exists (in any locale).
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|(n, _)| n == name)
    }

    /// Renders `name` in `locale` (English when that locale has no version).
    pub fn render(
        &self,
        name: &str,
        locale: &str,
        vars: &serde_json::Value,
    ) -> Result<Rendered, RenderError> {
        let locale = if self.names.contains(&(name.to_string(), locale.to_string())) {
            locale
        } else if self
            .names
            .contains(&(name.to_string(), LOCALES[0].to_string()))
        {
            LOCALES[0]
        } else {
            return Err(RenderError::Unknown(name.to_string()));
        };
        let part = |p: &str| -> Result<String, RenderError> {
            let key = format!("{name}.{locale}.{p}");
            self.env
                .get_template(&key)
                .and_then(|t| t.render(minijinja::value::Serde(vars)))
                .map_err(|e| RenderError::Failed(name.to_string(), format!("{e:#}")))
        };
        let subject: String = part("subject")?
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Rendered {
            subject,
            text: part("text")?,
            html: part("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(locale: &'static str, subject: &'static str) -> MailTemplate {
        MailTemplate {
            name: "x.hello",
            locale,
            subject,
            text: "Hi {{ name }}",
            html: "<p>Hi {{ name }}</p>",
        }
    }

    #[test]
    fn renders_escapes_falls_back_and_is_strict() {
        let ts = Templates::compile(vec![
            t("en", "Hello {{ name }}"),
            t("vi", "Xin chào {{ name }}"),
        ])
        .unwrap();
        let vars = serde_json::json!({ "name": "<b>Ann</b>" });
        let en = ts.render("x.hello", "en", &vars).unwrap();
        assert_eq!(en.subject, "Hello <b>Ann</b>");
        assert_eq!(en.text, "Hi <b>Ann</b>");
        assert_eq!(en.html, "<p>Hi &lt;b&gt;Ann&lt;&#x2f;b&gt;</p>");
        assert_eq!(
            ts.render("x.hello", "vi", &vars).unwrap().subject,
            "Xin chào <b>Ann</b>"
        );
        assert_eq!(
            ts.render("x.hello", "fr", &vars).unwrap().subject,
            "Hello <b>Ann</b>"
        );
        assert!(matches!(
            ts.render("x.hello", "en", &serde_json::json!({})),
            Err(RenderError::Failed(..))
        ));
        assert!(matches!(
            ts.render("nope", "en", &vars),
            Err(RenderError::Unknown(_))
        ));
    }

    #[test]
    fn broken_or_incomplete_sets_are_refused() {
        assert!(Templates::compile(vec![t("en", "{% if %}")]).is_err());
        assert!(Templates::compile(vec![t("vi", "x")]).is_err());
        assert!(Templates::compile(vec![t("en", "x"), t("en", "y")]).is_err());
    }
}
