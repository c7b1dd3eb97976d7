//! Real servers on 127.0.0.1 for the remote tests, each the test's own
//! child process (or thread), stopped when dropped: nginx with WebDAV PUT,
//! Debian's `docker-registry`, and a listener answering 500 to everything.
//! A missing binary fails the test and says what to install.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A port nothing listens on (as far as the kernel knows right now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of `program`, or a failure that says how to get it.
fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(program);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "`{program}` is not installed; these tests need it: `apt-get install -y {package}` (scripts/setup.sh installs it)"
    );
}

/// Waits until something accepts connections on `port`, or the child
/// exits (then fails with what it logged).
fn wait_until_listening(child: &mut Child, port: u16, log: &Path, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            let logged = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}) before listening on {port}:\n{logged}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20 s");
}

/// How the nginx server guards PUT and reads.
#[derive(Clone, Default)]
pub struct NginxOptions {
    /// Basic authentication: user and password.
    pub basic: Option<(String, String)>,
    /// A bearer token every request must carry.
    pub bearer: Option<String>,
    /// Answer 500 to every PUT.
    pub fail_puts: bool,
}

/// nginx serving a directory, with WebDAV PUT.
pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
    /// The document root.
    pub root: PathBuf,
}

impl Nginx {
    pub fn start(options: NginxOptions) -> Nginx {
        let nginx = require("nginx", "nginx");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let d = dir.path().display();
        let mut guard = String::new();
        if let Some((user, password)) = &options.basic {
            std::fs::write(
                dir.path().join("htpasswd"),
                format!("{user}:{{PLAIN}}{password}\n"),
            )
            .unwrap();
            guard += &format!("auth_basic \"xbuild\";\nauth_basic_user_file {d}/htpasswd;\n");
        }
        if let Some(token) = &options.bearer {
            guard += &format!("if ($http_authorization != \"Bearer {token}\") {{ return 401; }}\n");
        }
        if options.fail_puts {
            guard += "if ($request_method = PUT) { return 500; }\n";
        }
        for attempt in 0.. {
            let port = free_port();
            // One process (no workers), so killing the child stops it all;
            // every path inside the temp dir, so no root is needed.
            let config = format!(
                "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                 events {{ worker_connections 128; }}\n\
                 http {{\n access_log off;\n\
                 client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
                 uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
                 default_type application/octet-stream;\n\
                 server {{\n  listen 127.0.0.1:{port};\n  root {d}/root;\n  client_max_body_size 0;\n\
                 location / {{\n{guard}   dav_methods PUT;\n   create_full_put_path on;\n   dav_access user:rw group:r all:r;\n  }}\n }}\n}}\n"
            );
            std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
            let log = dir.path().join("error.log");
            let mut child = Command::new(&nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-e")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let started = Instant::now();
            // Lost the port to someone else between free_port and bind: retry.
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx {
                        child,
                        _dir: dir,
                        port,
                        root,
                    };
                }
                if started.elapsed() > Duration::from_secs(20) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            if attempt == 3 {
                let logged = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("nginx did not start on 127.0.0.1:{port}:\n{logged}");
            }
        }
        unreachable!()
    }

    /// `http://127.0.0.1:PORT/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}/{prefix}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's `docker-registry` (distribution 2.8) with filesystem storage.
pub struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
    /// The storage root directory.
    pub storage: PathBuf,
}

/// `ci` / `s3cret`, bcrypt with cost 4 (fast to check on every request).
pub const REGISTRY_HTPASSWD: &str =
    "ci:$2b$04$TPQiUueQq0hHXubTPVkaZ.S3OLa5cGEritcnGxTSdF7gr8LL90SA.\n";

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(false)
    }

    /// With `htpasswd`, the registry asks for Basic authentication
    /// (`ci` / `s3cret`).
    pub fn start_with(htpasswd: bool) -> Registry {
        Registry::start_full(htpasswd, false)
    }

    /// Over HTTPS with a certificate for 127.0.0.1 signed by a test CA made
    /// here with `openssl` (its PEM is [`Registry::ca`]).
    pub fn start_tls(htpasswd: bool) -> Registry {
        Registry::start_full(htpasswd, true)
    }

    /// The test CA's certificate of a TLS registry.
    pub fn ca(&self) -> PathBuf {
        self._dir.path().join("ca.pem")
    }

    fn start_full(htpasswd: bool, tls: bool) -> Registry {
        let registry = require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let d = dir.path().display();
        let auth = if htpasswd {
            std::fs::write(dir.path().join("htpasswd"), REGISTRY_HTPASSWD).unwrap();
            format!("auth:\n  htpasswd:\n    realm: xbuild\n    path: {d}/htpasswd\n")
        } else {
            String::new()
        };
        let port = free_port();
        let tls = if tls {
            make_certificates(dir.path());
            format!("  tls:\n    certificate: {d}/server.pem\n    key: {d}/server.key\n")
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {d}/storage\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             {auth}http:\n  addr: 127.0.0.1:{port}\n  secret: xbuild-tests\n{tls}"
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = dir.path().join("registry.log");
        let mut child = Command::new(&registry)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("registry.err")).unwrap())
            .spawn()
            .unwrap();
        wait_until_listening(
            &mut child,
            port,
            &dir.path().join("registry.err"),
            "docker-registry",
        );
        Registry {
            child,
            _dir: dir,
            port,
            storage,
        }
    }

    /// `oci://127.0.0.1:PORT/<repository>`.
    pub fn url(&self, repository: &str) -> String {
        format!("oci://127.0.0.1:{}/{repository}", self.port)
    }

    /// Where the registry keeps the bytes of a blob.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// A test CA (`ca.pem`) and a server certificate for 127.0.0.1 and
/// localhost signed by it (`server.pem`, `server.key`) in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=xbuild test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listener on 127.0.0.1 answering every request with HTTP 500.
pub struct Failing {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Failing {
    pub fn start() -> Failing {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || answer_500(stream));
                }
            }
        });
        Failing {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

/// Reads requests (head and body) on one connection and answers 500.
fn answer_500(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0u64;
        let mut lines = 0;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            lines += 1;
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" && lines > 1 {
                break;
            }
        }
        let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
        let body = "internal error";
        let answer = format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

impl Drop for Failing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
