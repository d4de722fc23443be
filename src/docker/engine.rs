//! Which Docker engine: resolved the way the docker CLI resolves it, once, in `cli/`, and then
//! passed down (and recorded in the journal with every fault, so a revert from the journal alone
//! reaches the same engine).
//!
//! Precedence, as the docker CLI's: `--docker-host` and `--docker-context` together are an error;
//! `--docker-context NAME`; `--docker-host URL`; `DOCKER_HOST`; `DOCKER_CONTEXT`; the
//! `currentContext` of `$DOCKER_CONFIG/config.json` (default `~/.docker`); the default socket.
//! The `default` context is the host flag / environment. TLS for a host given by flag or
//! environment: `DOCKER_TLS_VERIFY` (non-empty) with `DOCKER_CERT_PATH` (default `~/.docker`)
//! holding `ca.pem`, `cert.pem`, `key.pem`; a context's TLS material is in the context store
//! (`contexts/tls/<sha256 of the name>/docker/`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The local engine when nothing says otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// An engine, as the journal records it: where it is and how to authenticate — file paths,
/// never key material.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Engine {
    /// `unix:///path`, `tcp://host:port` or `ssh://[user@]host[:port]`.
    pub host: String,
    /// The docker context it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// TLS client files (tcp:// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// An ssh client configuration file for ssh:// engines (`DRILLKIT_SSH_CONFIG`; default: the
    /// user's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config: Option<PathBuf>,
}

/// The TLS files of a tcp:// engine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The transport an engine's URL asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Unix(PathBuf),
    Tcp(String),
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

impl Engine {
    /// The local engine at the default socket.
    pub fn local() -> Engine {
        Engine {
            host: DEFAULT_HOST.into(),
            context: None,
            tls: None,
            ssh_config: None,
        }
    }

    /// How the engine reads in messages: `tcp://127.0.0.1:2376 (TLS, context staging)`.
    pub fn describe(&self) -> String {
        let mut extra = Vec::new();
        if self.tls.is_some() {
            extra.push("TLS".to_string());
        }
        if let Some(c) = &self.context {
            extra.push(format!("context {c}"));
        }
        if extra.is_empty() {
            self.host.clone()
        } else {
            format!("{} ({})", self.host, extra.join(", "))
        }
    }

    /// Whether the engine is on this machine (a unix socket): only then do process faults,
    /// `--netns` and the host's pid namespace mean the engine's host.
    pub fn is_local(&self) -> bool {
        self.host.starts_with("unix://")
    }

    /// The transport, or what is wrong with the URL.
    pub fn transport(&self) -> Result<Transport, String> {
        let h = self.host.as_str();
        if let Some(p) = h.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(format!("{h}: no socket path"));
            }
            return Ok(Transport::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = h.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() {
                return Err(format!("{h}: no address"));
            }
            let with_port = if rest
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                rest.to_string()
            } else {
                // The docker CLI's defaults: 2376 with TLS, 2375 without.
                format!("{rest}:{}", if self.tls.is_some() { 2376 } else { 2375 })
            };
            return Ok(Transport::Tcp(with_port));
        }
        if h.starts_with("ssh://") {
            let u = url::Url::parse(h).map_err(|e| format!("{h}: {e}"))?;
            if u.path() != "" && u.path() != "/" {
                return Err(format!("{h}: an ssh:// engine takes no path"));
            }
            let host = u
                .host_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("{h}: no host"))?
                .to_string();
            if u.password().is_some() {
                return Err(format!(
                    "{h}: no password in the URL (use your ssh agent or keys)"
                ));
            }
            return Ok(Transport::Ssh {
                user: Some(u.username().to_string()).filter(|s| !s.is_empty()),
                host,
                port: u.port(),
            });
        }
        Err(format!(
            "{h}: unsupported engine URL (unix://, tcp:// or ssh://)"
        ))
    }
}

/// What the flags said; the environment and the docker CLI's files do the rest.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub host: Option<String>,
    pub context: Option<String>,
}

/// Why no engine could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Both flags (exit 2, like the docker CLI).
    #[error("give --docker-host or --docker-context, not both")]
    Conflict,
    /// A context or its files are wrong (exit 3: the environment's configuration).
    #[error("docker context {name}: {detail}")]
    Context { name: String, detail: String },
    /// The TLS settings point at files that are not there (exit 3).
    #[error("{0}")]
    Tls(String),
}

/// The environment the resolution reads (a function so tests pass their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, empty values as unset (as the docker CLI treats them).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Resolve the engine the way the docker CLI does (see the module docs).
pub fn resolve(sel: &Selection, env: Env) -> Result<Engine, ResolveError> {
    let ssh_config = env("DRILLKIT_SSH_CONFIG").map(PathBuf::from);
    if sel.host.is_some() && sel.context.is_some() {
        return Err(ResolveError::Conflict);
    }
    let context = if let Some(c) = &sel.context {
        Some(c.clone())
    } else if sel.host.is_some() || env("DOCKER_HOST").is_some() {
        None
    } else if let Some(c) = env("DOCKER_CONTEXT") {
        Some(c)
    } else {
        current_context(env)
    };
    let mut engine = match context.filter(|c| c != "default") {
        Some(name) => from_context(&name, env)?,
        None => {
            let host = sel
                .host
                .clone()
                .or_else(|| env("DOCKER_HOST"))
                .unwrap_or_else(|| DEFAULT_HOST.into());
            let tls = if env("DOCKER_TLS_VERIFY").is_some() {
                let dir = env("DOCKER_CERT_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| config_dir(env));
                Some(tls_files(&dir).map_err(ResolveError::Tls)?)
            } else {
                None
            };
            Engine {
                host,
                context: None,
                tls,
                ssh_config: None,
            }
        }
    };
    if engine.host.starts_with("ssh://") {
        engine.ssh_config = ssh_config;
    }
    Ok(engine)
}

/// `$DOCKER_CONFIG`, else `~/.docker`.
fn config_dir(env: Env) -> PathBuf {
    env("DOCKER_CONFIG").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env("HOME").unwrap_or_else(|| "/root".into())).join(".docker")
    })
}

/// The docker CLI's current context (`currentContext` in config.json), if any.
fn current_context(env: Env) -> Option<String> {
    let text = std::fs::read_to_string(config_dir(env).join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// The directory name the context store uses for a context: the hex SHA-256 of its name.
pub fn context_dir_name(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(name.as_bytes()))
}

/// A context of the docker CLI's store: its docker endpoint and TLS files.
fn from_context(name: &str, env: Env) -> Result<Engine, ResolveError> {
    let err = |detail: String| ResolveError::Context {
        name: name.into(),
        detail,
    };
    let store = config_dir(env).join("contexts");
    let hash = context_dir_name(name);
    let meta = store.join("meta").join(&hash).join("meta.json");
    let text = std::fs::read_to_string(&meta)
        .map_err(|e| err(format!("not found ({}: {e})", meta.display())))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("{}: {e}", meta.display())))?;
    let endpoint = v
        .pointer("/Endpoints/docker")
        .ok_or_else(|| err(format!("{} has no docker endpoint", meta.display())))?;
    let host = endpoint
        .get("Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| err(format!("{} has no Endpoints.docker.Host", meta.display())))?
        .to_string();
    if endpoint.get("SkipTLSVerify").and_then(|s| s.as_bool()) == Some(true) {
        return Err(err(
            "SkipTLSVerify is set; drillkit only talks TLS with a verified engine".into(),
        ));
    }
    let tls_dir = store.join("tls").join(&hash).join("docker");
    let tls = if tls_dir.join("ca.pem").exists() || tls_dir.join("cert.pem").exists() {
        Some(tls_files(&tls_dir).map_err(err)?)
    } else {
        None
    };
    Ok(Engine {
        host,
        context: Some(name.into()),
        tls,
        ssh_config: None,
    })
}

/// `ca.pem`, `cert.pem` and `key.pem` of a directory, each required.
fn tls_files(dir: &Path) -> Result<Tls, String> {
    let f = |n: &str| {
        let p = dir.join(n);
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "TLS is on (DOCKER_TLS_VERIFY) but {} is missing (DOCKER_CERT_PATH holds ca.pem, cert.pem, key.pem)",
                p.display()
            ))
        }
    };
    Ok(Tls {
        ca: f("ca.pem")?,
        cert: f("cert.pem")?,
        key: f("key.pem")?,
    })
}

/// An engine as a scenario's `engines:` map names it: a host (with an optional directory of
/// TLS files) or a docker context. `${VAR}` is expanded by the scenario parser.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// A directory with ca.pem, cert.pem and key.pem (TLS, verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
    /// An ssh client config for an ssh:// host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config: Option<PathBuf>,
}

impl EngineSpec {
    /// Shape only (exactly one of host and context; TLS files with a host).
    pub fn validate(&self) -> Result<(), String> {
        match (&self.host, &self.context) {
            (Some(_), Some(_)) => Err("give host or context, not both".into()),
            (None, None) => Err("an engine needs host or context".into()),
            (None, Some(_)) if self.cert_path.is_some() => {
                Err("cert_path goes with host (a context has its own TLS files)".into())
            }
            (Some(h), None) => Engine {
                host: h.clone(),
                ..Engine::local()
            }
            .transport()
            .map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The engine it names (a context is read from the docker CLI's store).
    pub fn resolve(&self, env: Env) -> Result<Engine, ResolveError> {
        let mut e = match (&self.host, &self.context) {
            (_, Some(c)) => resolve(
                &Selection {
                    host: None,
                    context: Some(c.clone()),
                },
                env,
            )?,
            (Some(h), None) => Engine {
                host: h.clone(),
                tls: match &self.cert_path {
                    Some(d) => Some(tls_files(d).map_err(ResolveError::Tls)?),
                    None => None,
                },
                ..Engine::local()
            },
            (None, None) => resolve(&Selection::default(), env)?,
        };
        if e.host.starts_with("ssh://") {
            e.ssh_config = self.ssh_config.clone().or(e.ssh_config);
        }
        Ok(e)
    }
}

/// The engines of a run: the default one (flags and environment) and a scenario's named ones.
#[derive(Clone, Debug, Default)]
pub struct EngineSet {
    pub default: Option<Engine>,
    pub named: std::collections::BTreeMap<String, Engine>,
}

impl EngineSet {
    /// Only the default engine.
    pub fn one(engine: Engine) -> EngineSet {
        EngineSet {
            default: Some(engine),
            named: Default::default(),
        }
    }

    /// The engine for `name` (None or `default`: the default one). Scenario checks make sure a
    /// name exists; an unknown one here is the default's.
    pub fn pick(&self, name: Option<&str>) -> Engine {
        name.and_then(|n| self.named.get(n))
            .cloned()
            .or_else(|| self.default.clone())
            .unwrap_or_else(Engine::local)
    }

    /// How a step's engine reads in a plan: `staging (tcp://…)` or the default's URL.
    pub fn describe(&self, name: Option<&str>) -> String {
        let e = self.pick(name);
        match name.filter(|n| self.named.contains_key(*n)) {
            Some(n) => format!("{n}: {}", e.describe()),
            None => e.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn store(dir: &Path, name: &str, host: &str, current: Option<&str>) {
        let meta = dir.join("contexts/meta").join(context_dir_name(name));
        std::fs::create_dir_all(&meta).expect("mkdir");
        std::fs::write(
            meta.join("meta.json"),
            format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
        )
        .expect("meta");
        if let Some(c) = current {
            std::fs::write(
                dir.join("config.json"),
                format!(r#"{{"currentContext":"{c}"}}"#),
            )
            .expect("config");
        }
    }

    #[test]
    fn precedence_is_the_docker_clis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        store(
            dir.path(),
            "staging",
            "tcp://10.0.0.1:2375",
            Some("staging"),
        );
        store(dir.path(), "dr", "ssh://deploy@dr-host", None);
        let none = Selection::default();
        // currentContext of config.json
        let e = resolve(&none, &env(&[("DOCKER_CONFIG", d)])).expect("resolve");
        assert_eq!(e.host, "tcp://10.0.0.1:2375");
        assert_eq!(e.context.as_deref(), Some("staging"));
        // DOCKER_CONTEXT beats it
        let e = resolve(
            &none,
            &env(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "dr")]),
        )
        .expect("resolve");
        assert_eq!(e.host, "ssh://deploy@dr-host");
        // DOCKER_HOST beats both
        let e = resolve(
            &none,
            &env(&[
                ("DOCKER_CONFIG", d),
                ("DOCKER_CONTEXT", "dr"),
                ("DOCKER_HOST", "unix:///x.sock"),
            ]),
        )
        .expect("resolve");
        assert_eq!((e.host.as_str(), e.context), ("unix:///x.sock", None));
        // --docker-context beats DOCKER_HOST
        let flag = Selection {
            context: Some("dr".into()),
            host: None,
        };
        let e = resolve(
            &flag,
            &env(&[("DOCKER_CONFIG", d), ("DOCKER_HOST", "unix:///x")]),
        )
        .expect("resolve");
        assert_eq!(e.context.as_deref(), Some("dr"));
        // both flags: refused
        let both = Selection {
            context: Some("dr".into()),
            host: Some("unix:///x".into()),
        };
        assert!(matches!(
            resolve(&both, &env(&[])),
            Err(ResolveError::Conflict)
        ));
        // an unknown context is named
        let bad = Selection {
            context: Some("nope".into()),
            host: None,
        };
        let msg = resolve(&bad, &env(&[("DOCKER_CONFIG", d)]))
            .expect_err("unknown")
            .to_string();
        assert!(msg.contains("docker context nope"), "{msg}");
        // "default" is the environment
        let e = resolve(&none, &env(&[("DOCKER_CONTEXT", "default")])).expect("resolve");
        assert_eq!(e, Engine::local());
    }

    #[test]
    fn tls_needs_its_three_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        let vars = [
            ("DOCKER_HOST", "tcp://127.0.0.1:1"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", d),
        ];
        let msg = resolve(&Selection::default(), &env(&vars))
            .expect_err("missing")
            .to_string();
        assert!(msg.contains("ca.pem is missing"), "{msg}");
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(f), "x").expect("write");
        }
        let e = resolve(&Selection::default(), &env(&vars)).expect("resolve");
        assert_eq!(e.tls.expect("tls").key, dir.path().join("key.pem"));
    }

    #[test]
    fn transports() {
        let t = |h: &str| {
            Engine {
                host: h.into(),
                ..Engine::local()
            }
            .transport()
        };
        assert_eq!(t("unix:///a.sock"), Ok(Transport::Unix("/a.sock".into())));
        assert_eq!(t("tcp://h"), Ok(Transport::Tcp("h:2375".into())));
        assert_eq!(t("tcp://h:1234/"), Ok(Transport::Tcp("h:1234".into())));
        assert_eq!(
            t("ssh://root@127.0.0.1:2222"),
            Ok(Transport::Ssh {
                user: Some("root".into()),
                host: "127.0.0.1".into(),
                port: Some(2222)
            })
        );
        assert!(t("ssh://h/path").is_err());
        assert!(t("npipe:////./pipe/docker_engine").is_err());
    }
}
