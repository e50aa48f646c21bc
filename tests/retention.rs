//! Retention: a log at its `audit_max_mb` cap refuses every call; `audit
//! archive` moves old rows into a file and the same server serves again,
//! with the log still verifying from where the archive ends. Exports and
//! archives verify on their own with the key, and an edit to one shows.
//! Rows removed from the start without the archive (or a forged mark) do
//! not verify.

mod common;

use std::path::Path;
use std::process::Output;

use common::{BIN, ServerProcess, said, try_call};
use flaregate::sandbox::EXAMPLE_COM;
use serde_json::json;

fn flaregate(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("flaregate runs")
}

fn verify(db: &Path) -> Output {
    flaregate(&["audit", "verify", "--audit-db", db.to_str().expect("utf-8")])
}

/// `audit verify --file FILE` with the key of the log at `db`.
fn verify_file(db: &Path, file: &Path) -> Output {
    flaregate(&[
        "audit",
        "verify",
        "--audit-db",
        db.to_str().expect("utf-8"),
        "--file",
        file.to_str().expect("utf-8"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_frees_a_full_log_and_the_chain_verifies_across_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(&config, "audit_max_mb = 0.1\n").expect("config");
    let server = ServerProcess::sandbox(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let db = server.audit_db.clone();
    let db_arg = db.to_str().expect("utf-8").to_string();
    let client = server.connect("auditor").await;
    let get_zone = || try_call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM}));
    let mut made = 0;
    let mut early_head = String::new();
    while get_zone().await.is_ok() {
        made += 1;
        if made == 1 {
            let head = flaregate(&["audit", "head", "--audit-db", &db_arg]);
            early_head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        }
        assert!(made < 5000, "the log never filled");
    }
    let admin = server.admin_url.clone().expect("admin listener");
    let ready = || async {
        reqwest::get(format!("{admin}/ready"))
            .await
            .expect("answers")
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 503, "full");

    // An export of everything verifies on its own; an edited copy does not.
    let export = dir.path().join("export.jsonl");
    let exported = flaregate(&[
        "audit",
        "export",
        "--audit-db",
        &db_arg,
        "--out",
        export.to_str().expect("utf-8"),
    ]);
    assert!(exported.status.success(), "{}", said(&exported));
    let checked = verify_file(&db, &export);
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(
        said(&checked).contains(&format!("all {made} rows verify")),
        "{}",
        said(&checked)
    );
    let text = std::fs::read_to_string(&export).expect("export");
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(
        &edited,
        text.replacen("auditor was allowed", "auditor was denied", 1),
    )
    .expect("edit");
    let checked = verify_file(&db, &edited);
    assert!(
        !checked.status.success(),
        "an edited export must not verify"
    );
    // Another key is named as such, not reported as tampering.
    let foreign =
        flaregate::audit::ChainKey::create(&dir.path().join("foreign.key")).expect("a key");
    let wrong = flaregate::audit::verify_file(&export, &foreign).expect_err("another key");
    assert!(wrong.to_string().contains("fingerprint"), "{wrong}");
    assert!(
        said(&checked).contains("does not match its hash"),
        "{}",
        said(&checked)
    );

    // Archive everything before now: the newest row stays, the rest moves.
    let archive = dir.path().join("archive-1.jsonl");
    let archived = flaregate(&[
        "audit",
        "archive",
        "--audit-db",
        &db_arg,
        "--before",
        "0s",
        "--out",
        archive.to_str().expect("utf-8"),
    ]);
    assert!(archived.status.success(), "{}", said(&archived));
    assert!(
        said(&archived).contains("archived rows 1–"),
        "{}",
        said(&archived)
    );
    let again = flaregate(&[
        "audit",
        "archive",
        "--audit-db",
        &db_arg,
        "--before",
        "0s",
        "--out",
        archive.to_str().expect("utf-8"),
    ]);
    assert!(!again.status.success(), "an archive is never written over");

    // The same server takes rows again, and the log verifies from the cut.
    let mut served = false;
    for _ in 0..50 {
        if get_zone().await.is_ok_and(|r| r.is_error == Some(false)) {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "calls are served again after the archive");
    assert_eq!(ready().await, 200);
    let verified = verify(&db);
    assert!(verified.status.success(), "{}", said(&verified));
    assert!(
        said(&verified).contains("all 2 rows verify"),
        "{}",
        said(&verified)
    );
    // A head saved before the cut is sent to the archive, not passed over.
    let early = flaregate(&[
        "audit",
        "verify",
        "--audit-db",
        &db_arg,
        "--expect-head",
        &early_head,
    ]);
    assert!(!early.status.success(), "{}", said(&early));
    assert!(said(&early).contains("archived part"), "{}", said(&early));
    let checked = verify_file(&db, &archive);
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(
        said(&checked).contains(&format!("all {} rows verify", made - 1)),
        "{}",
        said(&checked)
    );
    drop(client);
    let mut server = server;
    server.terminate();

    // Without the key: removing the first kept row, or the mark, or
    // rewriting the mark to skip further, is caught.
    let sql = |statement: &str| {
        let connection = rusqlite::Connection::open(&db).expect("open");
        connection.execute(statement, []).expect("tamper");
    };
    let copy = dir.path().join("copy.db");
    let fresh = |name: &str| {
        let connection = rusqlite::Connection::open(&db).expect("open");
        connection
            .execute(
                "VACUUM INTO ?1",
                [copy.with_file_name(name).to_str().expect("utf-8")],
            )
            .expect("copy");
    };
    fresh("saved.db");
    sql("DELETE FROM calls WHERE id = (SELECT MIN(id) FROM calls)");
    let broken = verify(&db);
    assert!(
        !broken.status.success(),
        "a row removed from the start must show"
    );
    assert!(said(&broken).contains("missing"), "{}", said(&broken));
    std::fs::copy(dir.path().join("saved.db"), &db).expect("restore");
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
    sql(
        "UPDATE chain_meta SET value = replace(value, 'through row', 'through row 9') WHERE name = 'archived'",
    );
    let forged = verify(&db);
    assert!(!forged.status.success(), "a forged mark must show");
    assert!(said(&forged).contains("archive mark"), "{}", said(&forged));
    sql("DELETE FROM chain_meta WHERE name = 'archived'");
    let unmarked = verify(&db);
    assert!(!unmarked.status.success(), "a removed mark must show");
}
