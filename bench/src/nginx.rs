//! Debian's nginx as a plain reverse proxy (no auth) in front of one upstream, with keepalive to it:
//! what an operations team would otherwise put in front of the services. Runs as a child process with
//! its configuration, pid file, logs and temp folders in a temp folder; stopped when dropped.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    child: Child,
    pub port: u16,
    prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on a free loopback port, proxying everything to `127.0.0.1:<upstream_port>`, and
    /// waits until it accepts connections.
    pub async fn start(upstream_port: u16, workers: usize) -> anyhow::Result<Self> {
        let prefix = tempfile::Builder::new().prefix("immilink-bench-nginx-").tempdir()?;
        // nginx started by root runs its workers as an unprivileged user: they must reach the prefix.
        fs::set_permissions(prefix.path(), fs::Permissions::from_mode(0o755))?;
        let port = free_port()?;
        let conf = prefix.path().join("nginx.conf");
        fs::write(&conf, config(prefix.path(), port, upstream_port, workers))?;
        let stderr = fs::File::create(prefix.path().join("stderr.log"))?;
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(prefix.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {NGINX}"))?;
        let mut nginx = Self { child, port, prefix };
        nginx.wait_until_listening().await?;
        Ok(nginx)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("nginx exited at start ({status}):\n{}", self.logs());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on port {} within 10 s:\n{}", self.port, self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|name| fs::read_to_string(self.prefix.path().join(name)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master stops its workers too (SIGKILL would leave them listening); SIGKILL only
    /// if it has not exited within 5 s. The temp folder goes after it.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(prefix: &Path, port: u16, upstream_port: u16, workers: usize) -> String {
    let p = |name: &str| -> PathBuf { prefix.join(name) };
    let user = if running_as_root() {
        if user_exists("www-data") {
            "user www-data;"
        } else {
            "user root;"
        }
    } else {
        ""
    };
    format!(
        r#"# Written by immilink's gateway-bench: a plain reverse proxy, no auth, keepalive to the upstream.
{user}
daemon off;
master_process on;
worker_processes {workers};
pid {pid};
error_log {error_log} warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#,
        pid = p("nginx.pid").display(),
        error_log = p("error.log").display(),
        body = p("client_body").display(),
        proxy = p("proxy").display(),
        fastcgi = p("fastcgi").display(),
        uwsgi = p("uwsgi").display(),
        scgi = p("scgi").display(),
    )
}

/// `/proc/self` belongs to the effective user of this process.
fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn user_exists(name: &str) -> bool {
    fs::read_to_string("/etc/passwd")
        .map(|passwd| passwd.lines().any(|line| line.split(':').next() == Some(name)))
        .unwrap_or(false)
}

/// A port nothing listens on right now (bound and released; nginx binds it a moment later).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
