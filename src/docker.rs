//! The Docker engine, through its API (bollard): connecting with a clear error, and the few
//! container facts drillkit needs (state, main pid, health, labels).

use crate::exit::{Code, Failure};
use bollard::models::ContainerInspectResponse;
use bollard::Docker;

/// What goes wrong talking to an engine. All of it is the environment's (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach Docker at {address}: {detail} (is dockerd running? set DOCKER_HOST to point elsewhere)")]
    Unreachable { address: String, detail: String },
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl Error {
    pub fn code(&self) -> Code {
        Code::Environment
    }

    /// An API call that failed, with what drillkit was doing.
    pub fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
        let what = what.into();
        move |source| Error::Api { what, source }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(e.code(), e)
    }
}

/// Where the engine is expected: `DOCKER_HOST` or the default socket.
pub fn address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

/// Connect and negotiate the API version (engines as old as 20.10 answer); exit 3 when unreachable.
pub async fn connect() -> Result<Docker, Error> {
    let address = address();
    let unreachable = |e: &dyn std::fmt::Display| Error::Unreachable {
        address: address.clone(),
        detail: e.to_string(),
    };
    let docker = Docker::connect_with_local_defaults().map_err(|e| unreachable(&e))?;
    let docker = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        docker.negotiate_version(),
    )
    .await
    .map_err(|_| unreachable(&"no answer within 10s"))?
    .map_err(|e| unreachable(&e))?;
    Ok(docker)
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
pub async fn inspect(docker: &Docker, name: &str) -> Result<ContainerFacts, Error> {
    match docker.inspect_container(name, None).await {
        Ok(c) => Ok(ContainerFacts::from_inspect(&c)),
        Err(e) if is_not_found(&e) => Err(Error::NoSuchContainer(name.to_string())),
        Err(source) => Err(Error::Api {
            what: format!("cannot inspect container {name}"),
            source,
        }),
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
