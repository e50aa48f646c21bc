//! A throw-away PostgreSQL server for a test: `initdb` in a temporary
//! folder, `pg_ctl` on a free loopback port, stopped when dropped. The
//! server refuses to run as root, so as root it runs as `postgres`.
//! `FLAREGATE_TEST_PG=off` skips the PostgreSQL tests (loudly).

use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Server options beyond the port and socket (`-c ssl=on`).
    options: String,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
}

impl Postgres {
    /// A fresh server, or `None` (with a message) when the PostgreSQL tests
    /// are switched off.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// A server that takes TCP connections only over TLS (with `certs`)
    /// and only with `password` (SCRAM) for the user `postgres`.
    pub fn start_tls(certs: &super::certs::Certs, password: &str) -> Option<Self> {
        Self::start_with(Some((certs, password)))
    }

    fn start_with(tls: Option<(&super::certs::Certs, &str)>) -> Option<Self> {
        if std::env::var("FLAREGATE_TEST_PG").as_deref() == Ok("off") {
            eprintln!("!!! SKIPPED: FLAREGATE_TEST_PG=off, the PostgreSQL tests did not run !!!");
            return None;
        }
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("initdb").exists())
            .expect("PostgreSQL is installed (.ci/run installs it; FLAREGATE_TEST_PG=off skips these tests)");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            options: if tls.is_some() {
                " -c ssl=on".into()
            } else {
                String::new()
            },
            dir,
            bin,
            port,
        };
        let password_file = server.dir.path().join("password");
        if let Some((_, password)) = tls {
            std::fs::write(&password_file, password).expect("write the password");
        }
        server.own_folder();
        server.run(&format!(
            "{} -D {} -A trust -U postgres --no-sync{}",
            server.tool("initdb"),
            server.data(),
            match tls {
                Some(_) => format!(" --pwfile {}", password_file.display()),
                None => String::new(),
            }
        ));
        if let Some((certs, _)) = tls {
            let data = std::path::Path::new(&server.data()).to_path_buf();
            std::fs::copy(&certs.cert, data.join("server.crt")).expect("certificate");
            std::fs::copy(&certs.key, data.join("server.key")).expect("key");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod the key");
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\nhost all all ::1/128 reject\n",
            )
            .expect("pg_hba.conf");
            server.own_folder();
        }
        server.start_again();
        Some(server)
    }

    /// Stops the server (fast: open connections are cut).
    pub fn stop(&self) {
        self.run(&format!(
            "{} -D {} stop -m fast -w",
            self.tool("pg_ctl"),
            self.data()
        ));
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn start_again(&self) {
        self.run(&format!(
            "{} -D {} -o '-p {} -k {} -c fsync=off -c max_connections=200{}' -l {}/log start -w",
            self.tool("pg_ctl"),
            self.data(),
            self.port,
            self.dir.path().display(),
            self.options,
            self.dir.path().display()
        ));
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn as_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    /// As root, the folder must belong to the user the server runs as.
    fn own_folder(&self) {
        if Self::as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(self.dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown the PostgreSQL folder");
        }
    }

    fn run(&self, command: &str) {
        let output = if Self::as_root() {
            Command::new("su")
                .args(["postgres", "-c", command])
                .output()
        } else {
            Command::new("sh").args(["-c", command]).output()
        }
        .expect("runs");
        assert!(
            output.status.success(),
            "{command}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("su")
            .args([
                "postgres",
                "-c",
                &format!(
                    "{} -D {} stop -m immediate",
                    self.tool("pg_ctl"),
                    self.data()
                ),
            ])
            .output();
        if !Self::as_root() {
            let _ = Command::new(self.tool("pg_ctl"))
                .args(["-D", &self.data(), "stop", "-m", "immediate"])
                .output();
        }
    }
}
