//! The Docker engine, through its API (bollard): connecting with a clear error, and the few
//! container facts drillkit needs (state, main pid, health, labels).

use crate::exit::{Code, Failure};
use bollard::models::ContainerInspectResponse;
use std::sync::Arc;

pub mod engine;
pub mod helper;
pub mod ssh;

pub use engine::Engine;

/// What goes wrong talking to an engine. All of it is the environment's (exit 3), except
/// selection flags that contradict each other (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach Docker at {address}: {detail}")]
    Unreachable { address: String, detail: String },
    #[error("cannot choose a Docker engine: {0}")]
    Select(engine::ResolveError),
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// The image network helpers run is not on the engine (drillkit never pulls).
    #[error("the helper image {image} is not on the Docker engine {engine}: partition and degrade in a container there run ip/tc/iptables in a helper container from it. Pull it onto that engine (`docker --host … pull {image}`), or load an image with iproute2 and iptables there and pass --helper-image (nothing was touched)")]
    HelperImage { image: String, engine: String },
    /// A helper container could not be built or run, or its work failed.
    #[error("{0}")]
    Helper(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl Error {
    pub fn code(&self) -> Code {
        match self {
            Error::Select(engine::ResolveError::Conflict) => Code::BadInput,
            _ => Code::Environment,
        }
    }

    /// An API call that failed, with what drillkit was doing.
    pub fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
        let what = what.into();
        move |source| Error::Api { what, source }
    }
}

impl From<engine::ResolveError> for Error {
    fn from(e: engine::ResolveError) -> Error {
        Error::Select(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(e.code(), e)
    }
}

/// A connected engine: the bollard client (every API call goes through it, by `Deref`), the
/// [`Engine`] it is (recorded with each fault), and for ssh:// the local proxy it lives on.
#[derive(Clone, Debug)]
pub struct Docker {
    api: bollard::Docker,
    engine: Engine,
    _ssh: Option<Arc<ssh::Proxy>>,
}

impl std::ops::Deref for Docker {
    type Target = bollard::Docker;
    fn deref(&self) -> &bollard::Docker {
        &self.api
    }
}

impl Docker {
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Seconds bollard waits for one API call.
const API_TIMEOUT: u64 = 120;

/// Connect to `engine` and negotiate the API version (engines as old as 20.10 answer); exit 3
/// naming the engine when it cannot be reached. Never falls back to another engine.
pub async fn connect(engine: &Engine) -> Result<Docker, Error> {
    let unreachable = |detail: String| Error::Unreachable {
        address: engine.describe(),
        detail,
    };
    let transport = engine.transport().map_err(unreachable)?;
    let version = bollard::API_DEFAULT_VERSION;
    let mut proxy = None;
    let api = match &transport {
        engine::Transport::Unix(path) => {
            bollard::Docker::connect_with_unix(&path.display().to_string(), API_TIMEOUT, version)
        }
        engine::Transport::Tcp(addr) => match &engine.tls {
            Some(t) => bollard::Docker::connect_with_ssl(
                &format!("https://{addr}"),
                &t.key,
                &t.cert,
                &t.ca,
                API_TIMEOUT,
                version,
            ),
            None => {
                bollard::Docker::connect_with_http(&format!("http://{addr}"), API_TIMEOUT, version)
            }
        },
        engine::Transport::Ssh { user, host, port } => {
            let p = ssh::Proxy::start(user.as_deref(), host, *port, engine.ssh_config.as_deref())
                .map_err(|e| unreachable(format!("cannot start the local ssh proxy: {e}")))?;
            let api = bollard::Docker::connect_with_unix(
                &p.socket().display().to_string(),
                API_TIMEOUT,
                version,
            );
            proxy = Some(Arc::new(p));
            api
        }
    }
    .map_err(|e| unreachable(e.to_string()))?;
    let negotiated =
        tokio::time::timeout(std::time::Duration::from_secs(15), api.negotiate_version()).await;
    let ssh_said = || {
        proxy
            .as_ref()
            .map(|p| p.last_error())
            .filter(|s| !s.is_empty())
            .map(|s| format!(" (ssh: {s})"))
            .unwrap_or_default()
    };
    let api = match negotiated {
        Err(_) => return Err(unreachable(format!("no answer within 15s{}", ssh_said()))),
        Ok(Err(e)) => return Err(unreachable(format!("{e}{}", ssh_said()))),
        Ok(Ok(api)) => api,
    };
    Ok(Docker {
        api,
        engine: engine.clone(),
        _ssh: proxy,
    })
}

/// What drillkit reads from `docker inspect`.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerFacts {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub pid: i64,
    pub health: Option<String>,
    pub restart_policy: Option<String>,
    /// How many times the engine restarted it (its restart policy at work).
    pub restart_count: i64,
    pub status: String,
}

impl ContainerFacts {
    pub fn from_inspect(c: &ContainerInspectResponse) -> ContainerFacts {
        let state = c.state.as_ref();
        ContainerFacts {
            id: c.id.clone().unwrap_or_default(),
            name: c
                .name
                .clone()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            running: state.and_then(|s| s.running).unwrap_or(false),
            paused: state.and_then(|s| s.paused).unwrap_or(false),
            restarting: state.and_then(|s| s.restarting).unwrap_or(false),
            pid: state.and_then(|s| s.pid).unwrap_or(0),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status.as_ref())
                .map(|s| s.to_string()),
            restart_policy: c
                .host_config
                .as_ref()
                .and_then(|h| h.restart_policy.as_ref())
                .and_then(|p| p.name.as_ref())
                .map(|n| n.to_string()),
            restart_count: c.restart_count.unwrap_or(0),
            status: state
                .and_then(|s| s.status.as_ref())
                .map(|s| s.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Inspect one container; a missing one is exit 3 naming it.
pub async fn inspect(docker: &bollard::Docker, name: &str) -> Result<ContainerFacts, Error> {
    // Podman's Docker-compatible API reports transient states the Docker API does not define
    // (`stopped`, between a container's exit and its restart under the policy), which bollard
    // cannot read. Such a state passes: ask again for up to 2 s before giving up.
    let mut unreadable = 0;
    loop {
        match docker.inspect_container(name, None).await {
            Ok(c) => return Ok(ContainerFacts::from_inspect(&c)),
            Err(e) if is_not_found(&e) => return Err(Error::NoSuchContainer(name.to_string())),
            Err(bollard::errors::Error::JsonDataError { .. }) if unreadable < 40 => {
                unreadable += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(source) => {
                return Err(Error::Api {
                    what: format!("cannot inspect container {name}"),
                    source,
                })
            }
        }
    }
}

pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
