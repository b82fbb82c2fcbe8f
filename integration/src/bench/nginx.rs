//! nginx (Debian package) as the benchmark's HTTP/1.1 server.
//!
//! One worker process pinned to one CPU, `/index.html` (13 bytes) and `/big.bin` (300,000
//! bytes), `sendfile on` (Debian's default: bodies leave through sendfile(2), never through
//! user memory), keep-alive without a request limit, no access log. The h2c server has
//! `sendfile off`: with it on, nginx's HTTP/2 responses stall on delayed ACKs (h2load then
//! manages ~230 req/s with or without the receiver). A second `server` on another port answers `stub_status`: its
//! `requests` counter is the ground truth of requests served (the status port is outside the
//! receiver's port filter, so it produces no spans).

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Size of `/big.bin` (bytes).
pub const BIG_LEN: usize = 300_000;

/// A running nginx (master + one worker); stopped on drop.
pub struct Nginx {
    child: Child,
    /// Port serving `GET /` (13-byte body).
    pub port: u16,
    /// Port serving the same files over cleartext HTTP/2 (prior knowledge, h2c).
    pub h2_port: u16,
    /// Port serving the same files over HTTPS (self-signed certificate, OpenSSL).
    pub tls_port: u16,
    /// Port serving `GET /status` (`stub_status`).
    pub status_port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with its worker pinned to `cpu` (taskset).
    pub fn start(cpu: usize) -> Result<Self> {
        let port = crate::free_port();
        let status_port = crate::free_port();
        let h2_port = crate::free_port();
        let tls_port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("oer-bench-nginx-{port}"));
        std::fs::create_dir_all(dir.join("www"))?;
        std::fs::write(dir.join("www/index.html"), "hello, bench\n")?;
        std::fs::write(dir.join("www/big.bin"), vec![b'x'; BIG_LEN])?;
        let st = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("openssl CLI (apt-get install openssl; scripts/setup.sh does)")?;
        anyhow::ensure!(st.success(), "openssl req failed");
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\nuser root;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  keepalive_requests 1000000000;\n  keepalive_timeout 300s;\n\
             \x20 client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n\
             \x20 uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
             \x20 server {{ listen 127.0.0.1:{port}; location / {{ root {d}/www; }} }}\n\
             \x20 server {{ listen 127.0.0.1:{h2_port} http2; sendfile off; location / {{ root {d}/www; }} }}\n\
             \x20 server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; location / {{ root {d}/www; }} }}\n\
             \x20 server {{ listen 127.0.0.1:{status_port}; location /status {{ stub_status; }} }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new("taskset")
            .args(["-c", &cpu.to_string(), "nginx", "-e"])
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start nginx (apt-get install nginx; scripts/setup.sh does)")?;
        let n = Self {
            child,
            port,
            h2_port,
            tls_port,
            status_port,
            dir,
        };
        let t0 = Instant::now();
        while n.requests().is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!(
                    "nginx did not answer on 127.0.0.1:{status_port}: {}",
                    std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(n)
    }

    /// nginx's total request counter (`stub_status`; this status request counts itself).
    pub fn requests(&self) -> Result<u64> {
        let body = crate::http_get_body(self.status_port, "/status").context("stub_status")?;
        // "Active connections: N \nserver accepts handled requests\n A H R \n..."
        let line = body.lines().nth(2).context("stub_status format")?;
        let r = line
            .split_whitespace()
            .nth(2)
            .context("stub_status format")?;
        Ok(r.parse()?)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        crate::terminate(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
