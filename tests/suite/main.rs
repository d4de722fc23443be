//! The integration suite: one test binary, one module per area (each file's doc says what it
//! covers). One binary links the crate once instead of once per file; tests that change or read
//! host-wide state take turns through `support::host_room`.

#[macro_use]
mod support;

mod act_workflows;
mod action_install;
mod actions_report;
mod actions_workflows;
mod canary_rpo;
mod ci_lints;
mod ci_mtimes;
mod composed_drill;
mod container_fault_engines;
mod crash_matrix;
mod dead_man;
mod degrade_methods;
mod demo_service;
mod dns_probe;
mod docker_faults;
mod doctor;
mod drill_docker;
mod drill_postgres;
mod dry_run;
mod fill_disk;
mod github_report;
mod guards;
mod negative_control;
mod netfault_partition;
mod podman_engine;
mod postgres_probe;
mod readme;
mod regional_failover;
mod remote_engines;
mod report_snapshots;
mod scenario_errors;
mod schedule;
mod stop_if;
mod tabletop;
mod verify_backup;

/// Re-run by the network-namespace probes inside a namespace (`--exact __netns_helper`); a no-op
/// unless `DK_NETNS_HELPER` is set.
#[test]
fn __netns_helper() {
    support::netns::helper();
}
