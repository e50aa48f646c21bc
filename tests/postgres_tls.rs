//! A managed PostgreSQL as production has it: TCP only over TLS, a
//! password required. flaregate reaches it with `sslmode=verify-full`
//! against the server's CA, the URL from `FLAREGATE_AUDIT_DB` and the
//! password from a `passfile` — nothing secret in flaregate.toml — and
//! the operator commands read the same. Plain connections, a certificate
//! from another CA, and a password in a refused URL are each refused with
//! a message that names the cause and never the password.

mod common;

use std::path::Path;
use std::process::Output;

use common::certs::Certs;
use common::postgres::Postgres;
use common::{BIN, SandboxProcess, ServerProcess, said, try_call};
use flaregate::sandbox::ACCOUNT_ID;
use serde_json::json;

const PASSWORD: &str = "pw-Kx81-never-shown";

/// `flaregate <args>` with FLAREGATE_AUDIT_DB set to `url`.
fn flaregate(args: &[&str], url: &str) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("FLAREGATE_AUDIT_DB", url)
        .env_remove("RUST_LOG")
        .output()
        .expect("flaregate runs")
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_written_over_verified_tls_with_the_password_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::new(dir.path(), "pg");
    let rogue = Certs::new(dir.path(), "rogue");
    let Some(pg) = Postgres::start_tls(&certs, PASSWORD) else {
        return;
    };
    let passfile = dir.path().join("pgpass");
    write_private(
        &passfile,
        &format!("# the audit database\n127.0.0.1:*:postgres:postgres:{PASSWORD}\n"),
    );
    let url = |query: &str| format!("{}?{query}", pg.url);
    let verified = url(&format!(
        "sslmode=verify-full&sslrootcert={}&passfile={}",
        certs.ca.display(),
        passfile.display()
    ));

    let (key, hash) = flaregate::policy::new_key();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[agent]]\nid = \"ops\"\nkey_sha256 = [\"{hash}\"]\naccounts = [\"*\"]\ngrants = {{ workers = \"read\" }}\n"
        ),
    )
    .expect("policy");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        "# no audit_db here: FLAREGATE_AUDIT_DB names it\n[cloudflare]\nrate_limit = \"off\"\ncheck_grants_at_start = false\n",
    )
    .expect("config");
    let config = config.to_str().expect("utf-8");

    let upstream = SandboxProcess::start(&["--rate-limit", "off"]);
    let server = ServerProcess::start(
        &[
            "--policies",
            policy.to_str().expect("utf-8"),
            "--config",
            config,
        ],
        &[
            ("CLOUDFLARE_API_TOKEN", upstream.token.as_str()),
            ("CLOUDFLARE_API_BASE_URL", upstream.base_url.as_str()),
            ("FLAREGATE_AUDIT_DB", verified.as_str()),
        ],
    );
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let answer = try_call(
        &client,
        "list_worker_scripts",
        json!({"account_id": ACCOUNT_ID}),
    )
    .await
    .expect("answered");
    assert_eq!(answer.is_error, Some(false), "{}", common::text(&answer));
    drop(client);

    // The operator commands find the same log through the same variable.
    let listed = flaregate(&["audit", "--config", config], &verified);
    assert!(listed.status.success(), "{}", said(&listed));
    assert!(
        said(&listed).contains("ops was allowed to list Worker scripts"),
        "the row is listed: {}",
        said(&listed)
    );
    let verify = flaregate(&["audit", "verify", "--config", config], &verified);
    assert!(verify.status.success(), "{}", said(&verify));

    // Without TLS the server refuses the connection (pg_hba: hostssl only);
    // the password in that URL is not repeated anywhere.
    let plain = format!(
        "{}?sslmode=disable",
        pg.url
            .replace("postgres@", &format!("postgres:{PASSWORD}@"))
    );
    let refused = flaregate(&["audit", "--config", config], &plain);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(
        said(&refused).contains("no encryption") || said(&refused).contains("pg_hba"),
        "{}",
        said(&refused)
    );
    assert!(!said(&refused).contains(PASSWORD), "{}", said(&refused));

    // A certificate from a CA the operator did not name is refused, by
    // the operator commands and by `serve` at start.
    let wrong_ca = url(&format!(
        "sslmode=verify-full&sslrootcert={}&passfile={}",
        rogue.ca.display(),
        passfile.display()
    ));
    let refused = flaregate(&["audit", "--config", config], &wrong_ca);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(said(&refused).contains("certificate"), "{}", said(&refused));
    let serve = std::process::Command::new(BIN)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--config",
            config,
            "--policies",
            policy.to_str().expect("utf-8"),
        ])
        .env("FLAREGATE_AUDIT_DB", &wrong_ca)
        .env("CLOUDFLARE_API_TOKEN", &upstream.token)
        .env("CLOUDFLARE_API_BASE_URL", &upstream.base_url)
        .output()
        .expect("serve runs");
    assert!(!serve.status.success(), "serve refused to start");
    assert!(said(&serve).contains("certificate"), "{}", said(&serve));

    // Without a password (no passfile) the server asks for one and is told none.
    let no_password = url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        certs.ca.display()
    ));
    let refused = flaregate(&["audit", "--config", config], &no_password);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(said(&refused).contains("password"), "{}", said(&refused));
}
