//! The deployment files in `deploy/`: the container's build file and the
//! systemd unit reference what exists, keep configuration read-only and
//! what flaregate writes under one data folder, and run as a user of their
//! own; the configuration they ship loads. (Building the image takes a
//! container engine and a quarter of an hour: docs/deploy.md says how.)

mod common;

use std::process::Command;

use common::{BIN, repo_path, shipped};

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn the_container_build_file_copies_what_exists_and_runs_as_its_own_user() {
    let dockerfile = read("deploy/Dockerfile");
    let mut stage = 0;
    let mut last_user = None;
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stage += 1;
            last_user = None;
        }
        if let Some(user) = line.strip_prefix("USER ") {
            last_user = Some(user.to_string());
        }
        let Some(copy) = line.strip_prefix("COPY ") else {
            continue;
        };
        if copy.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = copy.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(
                repo_path(source).exists(),
                "COPY {source}: not in the repository"
            );
        }
    }
    assert_eq!(stage, 2, "a build stage and a small runtime stage");
    assert_eq!(
        last_user.as_deref(),
        Some("flaregate"),
        "the image runs as flaregate"
    );
    assert!(dockerfile.contains("VOLUME [\"/var/lib/flaregate\"]"));
    assert!(dockerfile.contains("--locked"));
}

#[test]
fn the_systemd_unit_verifies_and_writes_only_its_data_folder() {
    let unit = read("deploy/flaregate.service");
    for line in [
        "User=flaregate",
        "ReadOnlyPaths=/etc/flaregate",
        "ReadWritePaths=/var/lib/flaregate",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecStart=/usr/local/bin/flaregate serve --config /etc/flaregate/flaregate.toml",
    ] {
        assert!(unit.contains(line), "{line}");
    }
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED systemd-analyze verify: not installed here");
        return;
    }
    // Verified with the binary this build made in the installed one's place.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("flaregate.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/flaregate", BIN)).expect("copy");
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("runs");
    // Problems in the unit are reported by its name (an unknown key too,
    // which still exits 0); lines about the host are not the unit's.
    let said = String::from_utf8_lossy(&verified.stderr);
    let about_unit = said.lines().any(|l| l.contains("flaregate.service"));
    assert!(verified.status.success() && !about_unit, "{said}");
}

#[test]
fn the_shipped_configuration_loads_and_keeps_writes_in_the_data_folder() {
    let config = read("deploy/flaregate.toml");
    for line in [
        "policies = \"/etc/flaregate/policies\"",
        "audit_db = \"/var/lib/flaregate/",
        "audit_key = \"/var/lib/flaregate/",
    ] {
        assert!(config.contains(line), "{line}");
    }
    let checked = Command::new(BIN)
        .args(["check", "--config"])
        .arg(repo_path("deploy/flaregate.toml"))
        .arg("--policies")
        .arg(shipped("policies"))
        .output()
        .expect("runs");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
