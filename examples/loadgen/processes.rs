//! The processes loadgen measures: starting them, and reading their RSS and
//! CPU time from /proc.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// flaregate's release binary, built beside this example.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("flaregate"))
        .expect("target dir");
    if !bin.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release` first",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

/// Starts a process and returns it with the value after `prefix` in its stdout.
pub fn start(
    command: &mut Command,
    prefix: &str,
) -> (Process, String, BufReader<std::process::ChildStdout>) {
    let mut process = Process(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn"),
    );
    let mut out = BufReader::new(process.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "process exited early"
        );
        if let Some(value) = line.trim().strip_prefix(prefix) {
            return (process, value.trim().to_string(), out);
        }
    }
}

/// Resident memory of a process, from /proc, in KB.
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time a process has used, in µs with nanosecond resolution: the sum
/// of its threads' time on a CPU (`/proc/PID/task/*/schedstat`, first
/// field, in ns). The clock-tick count of `/proc/PID/stat` (10 ms a tick)
/// would make a 500-call phase's figures steps of 20 µs per call. Threads
/// that exit take their time with them; the measured processes keep theirs
/// for the whole run (workers, the audit writer, its fsync thread, the
/// blocking pool's ten-second keep-alive), and the tick count is used when
/// schedstat is not there.
fn cpu_us(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    let schedstat: Option<u64> = tasks.ok().map(|tasks| {
        tasks
            .filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    });
    match schedstat {
        Some(ns) if ns > 0 => ns / 1_000,
        _ => ticks_us(pid),
    }
}

/// This process's CPU time so far, in µs.
pub fn own_cpu_us() -> u64 {
    cpu_us(std::process::id())
}

/// CPU time from /proc/PID/stat (user + system clock ticks), in µs.
fn ticks_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces: state is field 3.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    ticks * 1_000_000 / 100 // USER_HZ is 100 on Linux
}

/// CPU µs per call spent by each process during one measured phase; the
/// gateway is flaregate or the bare proxy, whichever the calls went through.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuPerCall {
    pub client_us: f64,
    pub gateway_us: f64,
    pub sandbox_us: f64,
}

/// Samples the three processes' CPU time around a phase of `calls` calls.
pub struct CpuMeter {
    /// The client (this process), the gateways (summed), the sandbox.
    client: (u32, u64),
    gateways: Vec<(u32, u64)>,
    sandbox: (u32, u64),
}

impl CpuMeter {
    pub fn start(gateways: &[u32], sandbox: u32) -> Self {
        let now = |pid: u32| (pid, cpu_us(pid));
        Self {
            client: now(std::process::id()),
            gateways: gateways.iter().map(|&pid| now(pid)).collect(),
            sandbox: now(sandbox),
        }
    }

    pub fn per_call(&self, calls: usize) -> CpuPerCall {
        let used = |(pid, start): (u32, u64)| (cpu_us(pid) - start) as f64 / calls.max(1) as f64;
        CpuPerCall {
            client_us: used(self.client),
            gateway_us: self.gateways.iter().map(|&g| used(g)).sum(),
            sandbox_us: used(self.sandbox),
        }
    }
}

/// The process listening on a TCP port on this machine (a peer loadgen did
/// not start, to read its CPU and memory), if this user can see it: the
/// listening socket's inode from /proc/net/tcp{,6}, then the process holding it.
pub fn listening_pid(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let listening = fields.get(3) == Some(&"0A");
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.get(9).map(|inode| inode.to_string()))
                .flatten()
        })?;
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.filter_map(Result::ok).any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str())
                })
            })
        })
}
