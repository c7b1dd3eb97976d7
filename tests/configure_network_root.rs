//! The configure layer on real Debian packages from the host's mirror
//! (bookworm, native x86_64 so no qemu is involved): accounts checked by
//! the host's pwck/grpck on the unpacked root and by `id`/`getent` inside
//! the image (podman), os-release compared field by field with the one
//! Debian's base-files ships, the CA bundle compared byte for byte with
//! the host's update-ca-certificates on the same ca-certificates `.deb`,
//! and curl in the image trusting a test CA's server on 127.0.0.1 only
//! when `[image] ca-certificates` names the CA. Needs the network and root.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use support::mirror::repository_line;
use support::oci::Layout;
use support::podman::Podman;
use support::run_ok;
use support::xbuild::{Project, RunOutput, Xbuild, temp_dir};

const TARGET: &str = "x86_64-linux";
const SUITE: &str = "bookworm";

/// One cache for these tests, in cargo's test temp dir (reruns are warm).
fn xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("configure-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

fn project(name: &str, include: &[&str], image: &str, extra: &str) -> Project {
    let include = include
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Project::new(&format!(
        "[image]\nname = \"{name}\"\ntag = \"latest\"\n{image}\n\n[packages]\ninclude = [{include}]\n{}\n{extra}",
        repository_line(SUITE)
    ))
}

fn build(project: &Project, out: &Path) -> Value {
    xbuild()
        .build(project.path(), out, &[TARGET])
        .success()
        .json()
}

/// `KEY=value` lines, quotes removed.
fn os_release_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
        .collect()
}

/// The last entry of `path` in the image's layers.
fn image_file(out: &Path, path: &str) -> Option<Vec<u8>> {
    let layout = Layout::open(out);
    let (_, manifest) = layout.manifest_for("amd64");
    let mut found = None;
    for layer in manifest["layers"].as_array().unwrap() {
        for entry in layout.layer_entries(layer) {
            if entry.path == path {
                found = Some(entry.contents);
            }
        }
    }
    found
}

/// Makes a CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        run_ok(Command::new("openssl").current_dir(dir).args(args));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=xbuild test CA",
        "-keyout",
        "test-ca.key",
        "-out",
        "test-ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "test-ca.crt",
        "-CAkey",
        "test-ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

/// `openssl s_server -www` on a free port of 127.0.0.1, killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .current_dir(dir)
            .args([
                "s_server",
                "-www",
                "-quiet",
                "-cert",
                "server.crt",
                "-key",
                "server.key",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        // Held from here on, so dropping it (a panic included) stops it.
        let server = TlsServer { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("openssl s_server did not listen on {port}");
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `podman run` of the loaded image with the host's network.
fn podman_run(podman: &Podman, image: &str, args: &[&str]) -> RunOutput {
    RunOutput::of(
        podman
            .command()
            .args(["run", "--rm", "--pull", "never", "--network", "host"])
            .args([
                "--ulimit",
                "nofile=4096:4096",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .args(["--platform", "linux/amd64"])
            .arg(image)
            .args(args),
    )
}

/// The cached `.deb` of `package` (by the sha256 the report gives).
fn cached_deb(report: &Value, package: &str) -> PathBuf {
    let sha256 = report["targets"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == package)
        .unwrap_or_else(|| panic!("no {package} in the report"))["sha256"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let cache = xbuild().cache_dir().to_owned();
    let mut pending = vec![cache];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|name| name == sha256.as_str()) {
                return path;
            }
        }
    }
    panic!("the .deb of {package} ({sha256}) is not in the cache");
}

#[test]
fn network_root_configure_accounts_os_release_and_ca_bundle() {
    let project = project(
        "configure-test",
        // dash and login: the shells the accounts name (/bin/sh,
        // /usr/sbin/nologin), which pwck looks for.
        &[
            "ca-certificates",
            "curl",
            "coreutils",
            "libc-bin",
            "dash",
            "login",
        ],
        "user = \"app\"\nca-certificates = [\"test-ca.crt\"]",
        "[[account]]\nname = \"app\"\nuid = 1000\n",
    );
    certificates(project.path());
    let out = temp_dir("xbuild-configure-out-");
    let report = build(&project, out.path());

    // Accounts: the host's checkers on the unpacked root…
    let bundle = out.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", out.path().join("oci").display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    for checker in ["pwck", "grpck"] {
        let checked = RunOutput::of(Command::new(checker).args(["-r", "-R"]).arg(&rootfs));
        let printed = format!("{}{}", checked.stdout, checked.stderr);
        // nobody's home is /nonexistent on purpose (as in Debian's own
        // images): pwck's one complaint, which makes it exit 2.
        let complaints: Vec<&str> = printed
            .lines()
            .filter(|line| {
                *line != "user 'nobody': directory '/nonexistent' does not exist"
                    && !line.ends_with(": no changes")
            })
            .collect();
        assert!(complaints.is_empty(), "{checker}: {printed}");
        let expected = if printed.contains("'/nonexistent' does not exist") {
            2
        } else {
            0
        };
        assert_eq!(
            checked.status.code(),
            Some(expected),
            "{checker}: {printed}"
        );
    }
    // …and the image's own tools, as the image's user.
    let podman = Podman::new();
    let image = podman.load(
        &out.path().join(format!("{TARGET}.tar")),
        "configure-test:latest",
    );
    let id = podman_run(&podman, &image, &["id"]);
    id.success();
    assert_eq!(
        id.stdout.trim(),
        "uid=1000(app) gid=1000(app) groups=1000(app)"
    );
    let getent = podman_run(&podman, &image, &["getent", "passwd", "app", "nobody"]);
    getent.success();
    assert_eq!(
        getent.stdout,
        "app:*:1000:1000::/home/app:/usr/sbin/nologin\n\
         nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    );
    let stat = podman_run(
        &podman,
        &image,
        &["stat", "-c", "%a %U", "/tmp", "/home/app"],
    );
    stat.success();
    assert_eq!(stat.stdout, "1777 root\n700 app\n");

    // os-release: the same fields as base-files' own, URLs left out.
    let written = String::from_utf8(image_file(out.path(), "usr/lib/os-release").unwrap()).unwrap();
    let base_out = temp_dir("xbuild-configure-base-");
    let base = self::project("configure-base", &["base-files"], "", "");
    build(&base, base_out.path());
    let debian =
        String::from_utf8(image_file(base_out.path(), "usr/lib/os-release").unwrap()).unwrap();
    let mut expected = os_release_fields(&debian);
    expected.retain(|key, _| !key.ends_with("_URL"));
    assert_eq!(
        os_release_fields(&written),
        expected,
        "ours:\n{written}\nDebian's:\n{debian}"
    );
    assert!(!written.contains("://"), "{written}");

    // The CA bundle: the host's update-ca-certificates on the same .deb,
    // with the configuration the postinst writes.
    let work = temp_dir("xbuild-configure-ca-");
    let extracted = work.path().join("root");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(cached_deb(&report, "ca-certificates"))
            .arg(&extracted),
    );
    let certs_dir = extracted.join("usr/share/ca-certificates");
    let mut names: Vec<String> = Vec::new();
    let mut pending = vec![certs_dir.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "crt") {
                names.push(
                    path.strip_prefix(&certs_dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    names.sort();
    assert!(names.len() > 100, "{names:?}");
    let ours_conf =
        String::from_utf8(image_file(out.path(), "etc/ca-certificates.conf").unwrap()).unwrap();
    let listed: Vec<&str> = ours_conf
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect();
    assert_eq!(listed, names);
    let conf = work.path().join("ca-certificates.conf");
    fs::write(&conf, &ours_conf).unwrap();
    let local = work.path().join("local");
    fs::create_dir_all(&local).unwrap();
    fs::copy(
        project.path().join("test-ca.crt"),
        local.join("test-ca.crt"),
    )
    .unwrap();
    let etc_certs = work.path().join("etc-ssl-certs");
    fs::create_dir_all(&etc_certs).unwrap();
    run_ok(
        Command::new("update-ca-certificates")
            .arg("--certsconf")
            .arg(&conf)
            .arg("--certsdir")
            .arg(&certs_dir)
            .arg("--localcertsdir")
            .arg(&local)
            .arg("--etccertsdir")
            .arg(&etc_certs)
            .args(["--hooksdir", ""]),
    );
    let host_bundle = fs::read(etc_certs.join("ca-certificates.crt")).unwrap();
    let ours = image_file(out.path(), "etc/ssl/certs/ca-certificates.crt").unwrap();
    assert!(
        ours == host_bundle,
        "the bundle differs from update-ca-certificates'"
    );

    // curl in the image trusts the test CA's server…
    let server = TlsServer::start(project.path());
    let url = format!("https://127.0.0.1:{}/", server.port);
    let trusted = podman_run(&podman, &image, &["curl", "-sS", "-o", "/dev/null", &url]);
    assert!(trusted.status.success(), "curl: {}", trusted.stderr);
    // …and, without the CA, refuses it (60: peer certificate not verified).
    let plain = self::project("configure-plain", &["ca-certificates", "curl"], "", "");
    let plain_out = temp_dir("xbuild-configure-plain-");
    build(&plain, plain_out.path());
    let plain_image = podman.load(
        &plain_out.path().join(format!("{TARGET}.tar")),
        "configure-plain:latest",
    );
    let refused = podman_run(
        &podman,
        &plain_image,
        &["curl", "-sS", "-o", "/dev/null", &url],
    );
    assert_eq!(refused.status.code(), Some(60), "curl: {}", refused.stderr);
}
