//! Fixtures of the TLS end-to-end tests: a self-signed certificate, nginx serving HTTPS with
//! it, and child processes stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Writes a self-signed certificate (`cert.pem`, `key.pem`; CN and SAN localhost /
/// 127.0.0.1) into `dir` with the openssl CLI.
pub fn make_cert(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl CLI");
    assert!(st.success(), "openssl req failed");
}

/// Stops (SIGTERM, so nginx takes its workers down) and reaps on drop, then removes the
/// process's working directory if it has one.
pub struct Guard(pub Child, pub Option<PathBuf>);
impl Drop for Guard {
    fn drop(&mut self) {
        crate::terminate(&mut self.0);
        if let Some(d) = &self.1 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Starts `cmd` with null stdio.
pub fn spawn(cmd: &mut Command) -> Guard {
    Guard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        None,
    )
}

/// Runs `cmd` to completion; panics with its output unless it succeeds.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// nginx (OpenSSL) on 127.0.0.1:`port` with `listen … {listen}` and the certificate of
/// `dir` ([`make_cert`]), serving `/a` and `/b` ("a\n", "b\n"); returns once it listens.
pub fn tls_nginx(dir: &Path, port: u16, listen: &str) -> Guard {
    let ngx = dir.join(format!("nginx-{port}"));
    std::fs::create_dir_all(ngx.join("html")).unwrap();
    std::fs::write(ngx.join("html/a"), "a\n").unwrap();
    std::fs::write(ngx.join("html/b"), "b\n").unwrap();
    let conf = format!(
        "worker_processes 1; pid {n}/nginx.pid; error_log {n}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; keepalive_timeout 30;\n\
           client_body_temp_path {n}; proxy_temp_path {n}; fastcgi_temp_path {n}; uwsgi_temp_path {n}; scgi_temp_path {n};\n\
           server {{ listen 127.0.0.1:{port} {listen}; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; root {n}/html; }} }}\n",
        n = ngx.display(),
        d = dir.display()
    );
    std::fs::write(ngx.join("nginx.conf"), conf).unwrap();
    let mut g = spawn(
        Command::new("nginx")
            .arg("-c")
            .arg(ngx.join("nginx.conf"))
            .args(["-g", "daemon off;"]),
    );
    g.1 = Some(ngx);
    crate::wait_listening(port);
    g
}
