//! The rules that keep a drill from hurting what it must not, in one place: `inject-fault` and
//! `drill run` refuse exactly the same things, with the same words, before anything is touched.

use super::target::Target;
use super::{Error, Result};

/// Environment names that mean production (compared without case).
pub const PRODUCTION_NAMES: [&str; 2] = ["production", "prod"];

/// Whether an environment name means production.
pub fn is_production(environment: &str) -> bool {
    let e = environment.trim();
    PRODUCTION_NAMES.iter().any(|p| e.eq_ignore_ascii_case(p))
}

/// Refuse a drill that says it runs in production unless it is allowed. `declared` lists where
/// the drill says it runs, each with where that came from (`environment:` of a scenario,
/// `DRILL_ENVIRONMENT`); any one of them naming production is enough.
pub fn guard_production(declared: &[(&str, Option<&str>)], allow: bool) -> Result<()> {
    if allow {
        return Ok(());
    }
    for (source, env) in declared {
        if let Some(env) = env.filter(|e| is_production(e)) {
            return Err(Error::Invalid(format!(
                "{source} is {env}: refusing to inject faults into production without \
                 --allow-production (nothing was touched)"
            )));
        }
    }
    Ok(())
}

/// Parse `KEY=VALUE` labels (exit 2 naming `flag` when malformed).
pub fn parse_labels(values: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Invalid(format!(
                "{flag} must be KEY=VALUE, got '{l}'"
            ))),
        })
        .collect()
}

/// The opt-in guard: with required labels, every target must be a container carrying all of
/// them. Refused (exit 2, nothing touched) otherwise, naming the target and the missing label.
pub async fn check_required_labels(
    targets: &[Target],
    docker: Option<&crate::docker::Docker>,
    required: &[(String, String)],
) -> Result<()> {
    if required.is_empty() {
        return Ok(());
    }
    let want: Vec<String> = required.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for t in targets {
        let Target::Container { id, name } = t else {
            return Err(Error::Invalid(format!(
                "--require-label {} allows only containers carrying it; {} is not a container (nothing was touched)",
                want.join(","),
                t.describe()
            )));
        };
        let c = super::plan::need_docker(docker)?
            .inspect_container(id, None)
            .await
            .map_err(crate::docker::Error::api(format!(
                "cannot inspect container {name}"
            )))?;
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        for (k, v) in required {
            if labels.get(k) != Some(v) {
                return Err(Error::Invalid(format!(
                    "container {name} does not carry the label {k}={v} (--require-label / safety.require_label); \
                     only opted-in containers may be targeted (nothing was touched)"
                )));
            }
        }
    }
    Ok(())
}

/// `--max-targets` / `safety.max_targets` must let at least one target through.
pub fn check_max_targets(max: usize) -> Result<()> {
    if max == 0 {
        return Err(Error::Invalid("--max-targets must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One table for every binary: what `inject-fault` and `drill run` refuse without
    /// `--allow-production`.
    #[test]
    fn production_names_are_refused_the_same_everywhere() {
        let table = [
            ("production", true),
            ("Production", true),
            ("PROD", true),
            ("prod", true),
            (" production ", true),
            ("staging", false),
            ("prod-like", false),
            ("preprod", false),
            ("dr", false),
            ("", false),
        ];
        for (name, refused) in table {
            assert_eq!(is_production(name), refused, "{name:?}");
            let r = guard_production(&[("DRILL_ENVIRONMENT", Some(name))], false);
            assert_eq!(r.is_err(), refused, "{name:?}");
            if let Err(e) = r {
                assert_eq!(e.code(), crate::exit::Code::BadInput);
                assert!(e.to_string().contains("--allow-production"), "{e}");
            }
            assert!(guard_production(&[("DRILL_ENVIRONMENT", Some(name))], true).is_ok());
        }
        // Any declared environment is enough.
        assert!(guard_production(
            &[
                ("scenario environment", Some("staging")),
                ("DRILL_ENVIRONMENT", Some("prod"))
            ],
            false
        )
        .is_err());
        assert!(guard_production(&[("scenario environment", None)], false).is_ok());
    }

    #[test]
    fn labels_must_be_key_value() {
        assert_eq!(
            parse_labels(&["a=b".into(), "c=".into()], "--require-label").expect("ok"),
            vec![("a".into(), "b".into()), ("c".into(), String::new())]
        );
        let e = parse_labels(&["=b".into()], "--require-label").expect_err("bad");
        assert!(e.to_string().contains("--require-label"), "{e}");
        assert!(parse_labels(&["nolabel".into()], "x").is_err());
        assert!(check_max_targets(0).is_err());
        assert!(check_max_targets(1).is_ok());
    }
}
