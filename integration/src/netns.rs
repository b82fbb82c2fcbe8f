//! Network-namespace harness for tests of per-layer kernel network timing: two namespaces
//! joined by a veth pair, shaping (`tbf`) and random loss (nftables) on either side, a Python
//! HTTP/1.1 keep-alive server, curl as client, and the namespaces' kernel counters.
//!
//! Inputs: a short tag per test (namespace names `oer-{tag}-c` / `oer-{tag}-s`). Outputs:
//! [`NetPair`] (deleted on drop), [`ServerChild`] (killed on drop), command outputs and
//! counters. Tests only use the addresses this module puts on the veth pair
//! (10.231.X.0/30, X from a hash of tag + pid), never another host.
//!
//! Limits: needs root, `ip`/`tc` (iproute2), `nft` (nftables), `nstat`, `python3` and `curl`
//! (scripts/setup.sh installs them); IPv4 only; a setup command that fails panics with its
//! stderr. Namespaces with the same names are deleted first, so a tag must be unique among
//! tests that run at the same time in one process.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One end of a [`NetPair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// `ip netns exec ns program`: add arguments, then run it.
pub fn cmd_in(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Runs `cmd`; returns stdout, panics with stderr when it fails.
fn run_cmd(mut cmd: Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args[0]` with `args[1..]` on the host; returns stdout, panics with stderr on failure.
fn run_host(args: &[&str]) -> String {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    run_cmd(c)
}

/// Runs `args[0]` with `args[1..]` inside `ns`; returns stdout, panics with stderr on failure.
pub fn run_in(ns: &str, args: &[&str]) -> String {
    let mut c = cmd_in(ns, args[0]);
    c.args(&args[1..]);
    run_cmd(c)
}

/// curl with `args` inside `ns` (e.g. several URLs on one keep-alive connection).
pub fn curl_in(ns: &str, args: &[&str]) -> Output {
    cmd_in(ns, "curl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (ip netns exec)")
}

/// Runs `f` on a thread that joined network namespace `ns` (sockets it opens live there).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = PathBuf::from("/run/netns").join(ns);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd; it only changes this (scoped) thread.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Value of kernel counter `name` (nstat's name, e.g. `TcpRetransSegs`, `TcpOutRsts`,
/// `TcpExtTCPLostRetransmit`) in namespace `ns`. Absolute value; nstat's history is not touched.
pub fn netstat_counter(ns: &str, name: &str) -> u64 {
    let out = run_in(ns, &["nstat", "-asz"]);
    out.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no counter {name} in `nstat -asz` of {ns}"))
}

fn netns_exists(ns: &str) -> bool {
    PathBuf::from("/run/netns").join(ns).exists()
}

/// Kills the processes left in `ns` and deletes it; errors are printed (used from Drop).
fn delete_netns(ns: &str) {
    if !netns_exists(ns) {
        return;
    }
    if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill has no memory preconditions; these processes run in our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    match Command::new("ip").args(["netns", "del", ns]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "ip netns del {ns}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("ip netns del {ns}: {e}"),
    }
}

/// Two namespaces joined by a veth pair: `c0` (client, 10.231.X.1/30) in `oer-{tag}-c` and
/// `s0` (server, 10.231.X.2/30) in `oer-{tag}-s`, all links (and `lo`) up. Drop deletes both
/// namespaces (and so the veth), killing what still runs in them.
pub struct NetPair {
    client_ns: String,
    server_ns: String,
    client_ip: Ipv4Addr,
    server_ip: Ipv4Addr,
}

impl NetPair {
    /// Creates the pair (deleting stale namespaces of the same names first).
    pub fn new(tag: &str) -> NetPair {
        let mut h = DefaultHasher::new();
        (tag, std::process::id()).hash(&mut h);
        let x = (h.finish() % 256) as u8;
        let pair = NetPair {
            client_ns: format!("oer-{tag}-c"),
            server_ns: format!("oer-{tag}-s"),
            client_ip: Ipv4Addr::new(10, 231, x, 1),
            server_ip: Ipv4Addr::new(10, 231, x, 2),
        };
        // From here on, Drop cleans up whatever part of the set-up succeeded.
        let (c, s) = (pair.client_ns.as_str(), pair.server_ns.as_str());
        delete_netns(c);
        delete_netns(s);
        run_host(&["ip", "netns", "add", c]);
        run_host(&["ip", "netns", "add", s]);
        run_host(&[
            "ip", "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "s0", "netns", s,
        ]);
        for (ns, dev, ip) in [(c, "c0", pair.client_ip), (s, "s0", pair.server_ip)] {
            run_host(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                dev,
            ]);
            run_host(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run_host(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    pub fn client_ns(&self) -> &str {
        &self.client_ns
    }
    pub fn server_ns(&self) -> &str {
        &self.server_ns
    }
    pub fn client_ip(&self) -> Ipv4Addr {
        self.client_ip
    }
    pub fn server_ip(&self) -> Ipv4Addr {
        self.server_ip
    }
    pub fn client_dev(&self) -> &str {
        "c0"
    }
    pub fn server_dev(&self) -> &str {
        "s0"
    }

    /// Namespace of `which` side.
    pub fn ns(&self, which: Side) -> &str {
        match which {
            Side::Client => self.client_ns(),
            Side::Server => self.server_ns(),
        }
    }

    /// veth device of `which` side.
    pub fn dev(&self, which: Side) -> &str {
        match which {
            Side::Client => self.client_dev(),
            Side::Server => self.server_dev(),
        }
    }

    /// Root `tbf` qdisc on `which` side's veth (replacing veth's default `noqueue`), shaping
    /// what that side sends: `rate_kbit` kbit/s, `burst_bytes` bucket, `latency_ms` queueing.
    pub fn rate_limit(&self, which: Side, rate_kbit: u32, burst_bytes: u32, latency_ms: u32) {
        run_in(
            self.ns(which),
            &[
                "tc",
                "qdisc",
                "replace",
                "dev",
                self.dev(which),
                "root",
                "tbf",
                "rate",
                &format!("{rate_kbit}kbit"),
                "burst",
                &burst_bytes.to_string(),
                "latency",
                &format!("{latency_ms}ms"),
            ],
        );
    }

    /// nftables rules in `which` side's OUTPUT hook (table `inet oer_drop`) dropping about
    /// `percent`% of the TCP packets to or from `tcp_port`. Drops there happen while the skb
    /// still has its socket: the sending TCP gets a local transmit error, keeps the segment
    /// queued and sends it again later as a first transmission, so `TcpRetransSegs` mostly
    /// does not move (stalls of a probe timer, ~200 ms, or a SYN-ACK timeout, 1 s, can
    /// follow). For loss the sender sees as loss, use [`NetPair::drop_random_input`] on the
    /// peer. Calls add up.
    pub fn drop_random(&self, which: Side, percent: u32, tcp_port: u16) {
        self.random_drop_rules(which, "output", percent, tcp_port);
    }

    /// Like [`NetPair::drop_random`] in `which` side's INPUT hook: packets are lost after
    /// crossing the veth, so the peer's TCP retransmits them (`TcpRetransSegs` of the peer).
    pub fn drop_random_input(&self, which: Side, percent: u32, tcp_port: u16) {
        self.random_drop_rules(which, "input", percent, tcp_port);
    }

    fn random_drop_rules(&self, which: Side, hook: &str, percent: u32, tcp_port: u16) {
        assert!(percent <= 100, "percent {percent} > 100");
        let ns = self.ns(which);
        let (p, n) = (tcp_port.to_string(), percent.to_string());
        run_in(ns, &["nft", "add", "table", "inet", "oer_drop"]);
        run_in(
            ns,
            &[
                "nft",
                &format!(
                    "add chain inet oer_drop {hook} {{ type filter hook {hook} priority 0; policy accept; }}"
                ),
            ],
        );
        let random_drop = ["numgen", "random", "mod", "100", "<", &n, "counter", "drop"];
        let head = ["nft", "add", "rule", "inet", "oer_drop", hook, "tcp"];
        run_in(ns, &[&head[..], &["dport", &p], &random_drop[..]].concat());
        // A packet with both ports equal to tcp_port is only tested once.
        run_in(
            ns,
            &[
                &head[..],
                &["sport", &p, "tcp", "dport", "!=", &p],
                &random_drop[..],
            ]
            .concat(),
        );
    }

    /// Packets the random-drop rules of `which` side (both hooks) dropped so far; 0 without
    /// rules.
    pub fn dropped_packets(&self, which: Side) -> u64 {
        let out = cmd_in(self.ns(which), "nft")
            .args(["list", "table", "inet", "oer_drop"])
            .output()
            .expect("run nft");
        String::from_utf8_lossy(&out.stdout)
            .split("packets ")
            .skip(1)
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        delete_netns(&self.client_ns);
        delete_netns(&self.server_ns);
    }
}

/// The embedded server: argv = ip, port, sleep_ms.
const HTTP_SERVER_PY: &str = r#"
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IP, PORT, SLEEP_MS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MAX_BYTES = 10_000_000

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and a small body leave in one write (flushed after each request), and no
    # Nagle: no 40 ms delayed-ACK stall on a keep-alive connection's later requests.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/sleep":
            time.sleep(SLEEP_MS / 1000)
            self.reply(200, b"slept\n")
        elif self.path.startswith("/bytes/"):
            try:
                n = int(self.path[len("/bytes/"):])
            except ValueError:
                n = -1
            if 0 <= n <= MAX_BYTES:
                self.reply(200, b"x" * n)
            else:
                self.reply(400, b"size must be 0..10000000\n")
        else:
            self.reply(404, b"not found\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        left = n
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)
        if self.path == "/echo":
            self.reply(200, str(n - left).encode() + b"\n")
        else:
            self.reply(404, b"not found\n")

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((IP, PORT), H).serve_forever()
"#;

/// The Python HTTP server process; killed (and its log file removed) on drop.
pub struct ServerChild {
    child: Child,
    stderr_path: PathBuf,
}

impl ServerChild {
    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote on stderr so far (tracebacks).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Starts the Python HTTP/1.1 keep-alive server on `ip:port` in `ns`: `GET /sleep` sleeps
/// `sleep_ms` then answers 200 `slept`, `GET /bytes/N` answers N bytes (N ≤ 10 MB),
/// `POST /echo` reads the body and answers its length. Returns once it accepts connections,
/// polled from the client namespace (`oer-{tag}-c` when `ns` is `oer-{tag}-s`, else `ns`);
/// panics after 10 s or if the server exits.
pub fn spawn_http_server(ns: &str, ip: Ipv4Addr, port: u16, sleep_ms: u64) -> ServerChild {
    let stderr_path =
        std::env::temp_dir().join(format!("oer-httpd-{}-{ns}-{port}.log", std::process::id()));
    let child = cmd_in(ns, "python3")
        .args(["-c", HTTP_SERVER_PY])
        .args([ip.to_string(), port.to_string(), sleep_ms.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .expect("start python3 (ip netns exec)");
    let mut server = ServerChild { child, stderr_path };
    let poll_ns = match ns.strip_suffix("-s") {
        Some(base) if netns_exists(&format!("{base}-c")) => format!("{base}-c"),
        _ => ns.to_string(),
    };
    let addr = SocketAddr::from((ip, port));
    let t0 = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "http server in {ns} exited with {status}: {}",
                server.stderr()
            );
        }
        let up = in_netns(&poll_ns, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        if up {
            return server;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "http server on {addr} in {ns} not accepting after 10 s: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
