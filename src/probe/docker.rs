//! Docker probe: the container runs (not paused, not restarting) or, with `healthy`, its health
//! check reports healthy.

use super::Outcome;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct DockerProbe {
    container: String,
    healthy: bool,
    docker: crate::docker::Docker,
    /// The scenario's name of its engine, when it is not the run's default.
    engine: Option<String>,
}

impl DockerProbe {
    pub fn new(container: &str, healthy: bool, docker: crate::docker::Docker) -> DockerProbe {
        DockerProbe {
            container: container.to_string(),
            healthy,
            docker,
            engine: None,
        }
    }

    /// Named after a scenario's engine (`engine: dr`): the description says which engine it
    /// asks, so two regions' same-named containers stay apart in the journal.
    pub fn on_engine(mut self, name: Option<&str>) -> DockerProbe {
        self.engine = name.filter(|n| *n != "default").map(str::to_string);
        self
    }

    pub fn describe(&self) -> String {
        describe(&self.container, self.healthy, self.engine.as_deref())
    }

    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let facts = match tokio::time::timeout(
            timeout,
            crate::docker::inspect(&self.docker, &self.container),
        )
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Outcome::fail(e.to_string(), start.elapsed()),
            Err(_) => return Outcome::fail("Docker did not answer in time", start.elapsed()),
        };
        let state = if facts.paused {
            "paused".to_string()
        } else {
            facts.status.clone()
        };
        if self.healthy {
            match facts.health.as_deref() {
                Some("healthy") if facts.running => Outcome::pass("healthy", start.elapsed()),
                Some(h) => Outcome::fail(format!("{state}, health {h}"), start.elapsed()),
                None => Outcome::fail(
                    format!("{state}, and the container has no health check"),
                    start.elapsed(),
                ),
            }
        } else if facts.running && !facts.paused && !facts.restarting {
            Outcome::pass("running", start.elapsed())
        } else {
            Outcome::fail(state, start.elapsed())
        }
    }
}

/// `docker api running`, `docker api healthy on dr`: what the journal calls a docker probe.
pub fn describe(container: &str, healthy: bool, engine: Option<&str>) -> String {
    format!(
        "docker {container}{}{}",
        if healthy { " healthy" } else { " running" },
        engine
            .filter(|n| *n != "default")
            .map(|n| format!(" on {n}"))
            .unwrap_or_default()
    )
}
