//! Docker probe: the container runs (not paused, not restarting) or, with `healthy`, its health
//! check reports healthy.

use super::Outcome;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct DockerProbe {
    container: String,
    healthy: bool,
    docker: crate::docker::Docker,
}

impl DockerProbe {
    pub fn new(container: &str, healthy: bool, docker: crate::docker::Docker) -> DockerProbe {
        DockerProbe {
            container: container.to_string(),
            healthy,
            docker,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "docker {}{}",
            self.container,
            if self.healthy { " healthy" } else { " running" }
        )
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
