#!/usr/bin/env python3
"""Where flaregate's CPU goes, by stage of a call, from a perf profile.

    perf record -F 2999 -g -p "$(pgrep -f 'flaregate serve --http 127.0.0.1:0')" -- sleep 5
    perf script | python3 examples/loadgen/stages.py

Each sample is given to one stage: the innermost frame of its call stack
(leaf first) that names one. Allocation (malloc/free) is a stage of its own
so it is counted wherever it happens; kernel frames name no stage, so a
system call is counted under the code that made it (a socket write under
the HTTP server, a futex wake under the channel that woke a thread).
Samples no pattern names are listed under "other" with their leaf symbol.
"""

import collections
import re
import sys

# (stage, pattern on a frame's symbol), tried on each frame from the leaf up.
STAGES = [
    ("allocation (malloc/free/realloc)", r"^(__libc_)?(malloc|free|realloc|calloc|_int_malloc|_int_free|malloc_consolidate|cfree)|^__rust_(alloc|dealloc|realloc)"),
    ("audit: fsync of the WAL", r"flaregate::audit::sync::|fdatasync|fsync"),
    ("audit: hashing (HMAC-SHA256)", r"flaregate::audit::chain::|sha2::|hmac::"),
    ("audit: SQLite", r"sqlite3|rusqlite::"),
    ("audit: PostgreSQL client", r"^postgres::|tokio_postgres::"),
    ("audit: record build (summary, stored args)", r"flaregate::audit::(record|summary|stored_args)|Gateway::record|flaregate::audit::now_"),
    ("audit: writer loop", r"flaregate::audit::(writer|append|mod)::"),
    ("channel hops (mpsc/oneshot, wake-ups)", r"tokio::sync::(mpsc|oneshot)|tokio::sync::task::atomic_waker|crossbeam_channel|std::sync::mpmc"),
    ("rendering the result", r"flaregate::server::render::"),
    # The bare MCP proxy's tool parses the same answer inline (its own code
    # is little else), so its frames count here.
    ("Cloudflare envelope parse", r"flaregate::cloudflare::(envelope|response)|loadgen::mcp_proxy::"),
    ("request build", r"flaregate::cloudflare::(request|build)|flaregate::cloudflare::PreparedRequest"),
    ("upstream client (reqwest, hyper client)", r"reqwest::|hyper_util::client|hyper::client|flaregate::cloudflare::"),
    ("scope filtering of lists", r"flaregate::server::visible::|flaregate::policy::lists::"),
    ("schema validation", r"jsonschema::|flaregate::catalog::.*validat"),
    ("decision (policy, budgets)", r"flaregate::policy::|flaregate::budget::"),
    ("tool lookup and call path", r"flaregate::server::(call|gateway|handler)::|flaregate::catalog::"),
    # flaregate's direct path (src/server/direct.rs) is parsing and
    # serialising with rmcp's types, and little else.
    ("JSON-RPC parse / serialise (rmcp's types)", r"rmcp::model::.*(deserialize|serialize|Deserialize|Serialize)|serde_json::(de|ser)::.*rmcp|flaregate::server::direct::"),
    ("rmcp: per-request service and dispatch", r"^rmcp::|<rmcp::"),
    ("HTTP server (hyper, axum, middleware)", r"hyper::proto::h1|hyper::server|axum::|flaregate::server::http::|tower::|hyper_util::server|hyper::body"),
    ("telemetry and metrics", r"flaregate::(metrics|telemetry)::|tracing_core|tracing::"),
    ("tokio scheduler, timers, epoll", r"^tokio::|<tokio::|mio::|epoll_wait"),
]
COMPILED = [(stage, re.compile(pattern)) for stage, pattern in STAGES]


def samples(lines):
    """Yields (thread name, [symbols, leaf first]) for each sample."""
    header, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if header is not None:
                yield header, frames
            header, frames = None, []
        elif not line.startswith((" ", "\t")):
            header, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                symbol = parts[1].rsplit(" (", 1)[0]
                symbol = re.sub(r"\+0x[0-9a-f]+$", "", symbol)
                frames.append(symbol)
    if header is not None:
        yield header, frames


def stage_of(frames):
    for frame in frames:
        for stage, pattern in COMPILED:
            if pattern.search(frame):
                return stage
    return None


def main():
    by_stage = collections.Counter()
    by_thread = collections.Counter()
    other = collections.Counter()
    total = 0
    for thread, frames in samples(sys.stdin):
        total += 1
        by_thread[thread] += 1
        stage = stage_of(frames)
        if stage is None:
            stage = "other"
            other[frames[0] if frames else "?"] += 1
        by_stage[stage] += 1
    if not total:
        sys.exit("no samples on stdin (perf script output expected)")
    print(f"{total} samples\n")
    print("| stage | share |\n|---|---:|")
    for stage, count in by_stage.most_common():
        print(f"| {stage} | {100 * count / total:.1f}% |")
    print("\n| thread | share |\n|---|---:|")
    for thread, count in by_thread.most_common():
        print(f"| {thread} | {100 * count / total:.1f}% |")
    if other:
        print("\nunnamed leaves (most frequent):")
        for symbol, count in other.most_common(12):
            print(f"  {100 * count / total:5.1f}%  {symbol}")


if __name__ == "__main__":
    main()
