//! `xbuild run` against the host's real Debian mirror: `examples/cowsay`
//! built and run here, foreign (aarch64 and armv7, through the emulator
//! xbuild fetched into the cache and registered in the sandbox's own
//! binfmt_misc, or the host's registration) and native (x86_64), compared with `podman run` of
//! the same image. They need the network and root (podman; the
//! unprivileged run switches to `nobody` with setpriv).
//!
//! The cowsay image has no shell: its perl stands in for one.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::podman::{Podman, assert_binfmt};
use support::xbuild::{RunOutput, Xbuild, temp_dir};

const IMAGE: &str = "cowsay-hello-world:latest";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cowsay")
}

/// One cache for these tests, in cargo's test temp dir (reruns are warm).
fn xbuild() -> Xbuild {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-cache");
    Xbuild::new().with_cache_dir(&cache).with_host_apt()
}

/// `xbuild run examples/cowsay --target TARGET --out OUT -q ARGS…`.
fn run_command(xbuild: &Xbuild, out: &Path, target: &str, args: &[&str]) -> Command {
    let mut command = xbuild.command();
    command
        .arg("run")
        .arg(example())
        .args(["--target", target, "-q", "--out"])
        .arg(out)
        .args(args);
    command
}

fn run(target: &str, args: &[&str]) -> RunOutput {
    let out = temp_dir("xbuild-run-out-");
    RunOutput::of(&mut run_command(&xbuild(), out.path(), target, args))
}

fn cow(output: &RunOutput) {
    assert!(output.stdout.contains("(oo)"), "no cow:\n{}", output.stdout);
}

#[test]
fn network_root_run_cowsay_aarch64_prints_the_cow() {
    assert_binfmt("aarch64");
    let output = run("aarch64-linux", &[]);
    output.success();
    cow(&output);
    assert!(
        output.stdout.contains("< hello world >"),
        "{}",
        output.stdout
    );
}

#[test]
fn network_root_run_cowsay_armv7_prints_the_cow_as_arm() {
    assert_binfmt("arm");
    let output = run("armv7-linux", &[]);
    output.success();
    cow(&output);
    // The program runs as a 32-bit ARM process: perl's own idea of its
    // architecture says so.
    let arch = run(
        "armv7-linux",
        &["--", "perl", "-MConfig", "-e", "print $Config{archname}"],
    );
    arch.success();
    assert!(arch.stdout.starts_with("arm-linux"), "{}", arch.stdout);
}

#[test]
fn network_root_run_args_replace_the_cmd() {
    let output = run("aarch64-linux", &["--", "cowsay", "moo"]);
    output.success();
    cow(&output);
    assert!(output.stdout.contains("< moo >"), "{}", output.stdout);
    assert!(!output.stdout.contains("hello world"), "{}", output.stdout);
}

#[test]
fn network_root_run_exit_status_passes_through() {
    let exit = run("aarch64-linux", &["--", "perl", "-e", "exit 7"]);
    assert_eq!(exit.status.code(), Some(7), "{}", exit.stderr);
    // A death by SIGTERM is 128 + 15, as a shell reports it.
    let killed = run(
        "aarch64-linux",
        &["--", "perl", "-e", "kill 'TERM', $$; sleep 5"],
    );
    assert_eq!(killed.status.code(), Some(143), "{}", killed.stderr);
    // A command the image does not have: 127, as podman's.
    let missing = run("aarch64-linux", &["--", "no-such-program"]);
    assert_eq!(missing.status.code(), Some(127), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no-such-program"),
        "{}",
        missing.stderr
    );
}

#[test]
fn network_root_run_sees_env_and_stdin() {
    let output = run(
        "aarch64-linux",
        &[
            "--env",
            "GREETING=from the test",
            "--",
            "perl",
            "-e",
            "print \"$ENV{GREETING}|$ENV{PATH}|$$\\n\"",
        ],
    );
    output.success();
    let fields: Vec<&str> = output.stdout.trim().split('|').collect();
    assert_eq!(fields[0], "from the test");
    // The image's own PATH (it has /usr/games, where cowsay is).
    assert!(fields[1].contains("/usr/games"), "{}", output.stdout);
    // PID 1 is the sandbox's init, the command its child.
    assert_eq!(fields[2], "2", "{}", output.stdout);

    let out = temp_dir("xbuild-run-out-");
    let mut child = run_command(
        &xbuild(),
        out.path(),
        "aarch64-linux",
        &["--", "perl", "-ne", "print uc"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "THROUGH STDIN\n");
}

#[test]
fn network_root_run_volumes_read_write_and_read_only() {
    let host = temp_dir("xbuild-run-volume-");
    std::fs::write(host.path().join("in"), "from the host\n").unwrap();
    let script = "open my $in, '<', '/data/in' or die; print <$in>; \
                  open my $out, '>', '/data/out' or die \"cannot write: $!\\n\"; \
                  print $out \"from the container\\n\"";
    let volume = format!("{}:/data", host.path().display());
    let output = run(
        "aarch64-linux",
        &["--volume", &volume, "--", "perl", "-e", script],
    );
    output.success();
    assert_eq!(output.stdout, "from the host\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "from the container\n"
    );

    std::fs::remove_file(host.path().join("out")).unwrap();
    let read_only = format!("{volume}:ro");
    let output = run(
        "aarch64-linux",
        &["--volume", &read_only, "--", "perl", "-e", script],
    );
    assert_eq!(output.stdout, "from the host\n");
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("Read-only file system"),
        "{}",
        output.stderr
    );
    assert!(!host.path().join("out").exists());
}

#[test]
fn network_root_run_writes_do_not_reach_the_cached_root() {
    let write = "open my $f, '>', '/etc/xbuild-marker' or die $!; print $f 'x'; close $f; \
                 unlink '/usr/games/cowsay' or die $!; \
                 print -e '/etc/xbuild-marker' ? \"written\\n\" : \"absent\\n\"";
    let first = run("aarch64-linux", &["--", "perl", "-e", write]);
    first.success();
    assert_eq!(first.stdout, "written\n");
    let look = "print -e '/etc/xbuild-marker' ? \"written\\n\" : \"absent\\n\"; \
                print -e '/usr/games/cowsay' ? \"cowsay\\n\" : \"no cowsay\\n\"";
    let second = run("aarch64-linux", &["--", "perl", "-e", look]);
    second.success();
    assert_eq!(second.stdout, "absent\ncowsay\n");
    // Nor is it anywhere in the cache's root filesystems
    // (rootfs-v1/<key>/root).
    let cache = xbuild().cache_dir().join("rootfs-v1");
    let roots: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().path().join("root"))
        .filter(|path| path.join("usr/games/cowsay").is_file())
        .collect();
    assert!(
        !roots.is_empty(),
        "no root filesystem in {}",
        cache.display()
    );
    for root in roots {
        assert!(!root.join("etc/xbuild-marker").exists());
    }
}

#[test]
fn network_root_run_native_image_needs_no_qemu() {
    // With the host's binfmt entries ignored, a native image still runs…
    let xbuild = xbuild().with_env("XBUILD_IGNORE_HOST_BINFMT", "1");
    let out = temp_dir("xbuild-run-out-");
    let output = RunOutput::of(&mut run_command(&xbuild, out.path(), "x86_64-linux", &[]));
    output.success();
    cow(&output);
    // …and a foreign one, with xbuild's own emulator not allowed either,
    // is refused, saying what to do (status 125).
    let xbuild = xbuild.with_env("XBUILD_RUN_BINFMT", "host");
    let output = RunOutput::of(&mut run_command(&xbuild, out.path(), "aarch64-linux", &[]));
    assert_eq!(output.status.code(), Some(125), "{}", output.stderr);
    assert!(
        output.stderr.contains("qemu-user-static"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("podman run --platform linux/arm64"),
        "{}",
        output.stderr
    );
    assert!(output.stdout.is_empty());
}

/// A perl one-liner listing the sandbox's binfmt_misc entries, and the
/// interpreter of its qemu-aarch64 entry if it has one.
const LIST_BINFMT: &str = "opendir my $d, '/proc/sys/fs/binfmt_misc'; \
    print join(' ', sort grep { !/^[.]/ } readdir $d), \"\\n\"; \
    if (open my $f, '<', '/proc/sys/fs/binfmt_misc/qemu-aarch64') \
    { print grep { /^interpreter / } <$f> }";

#[test]
fn network_root_run_registers_its_own_emulator_without_the_host_binfmt() {
    // The host's entries ignored, and only xbuild's own emulator allowed.
    let xbuild = xbuild()
        .with_env("XBUILD_IGNORE_HOST_BINFMT", "1")
        .with_env("XBUILD_RUN_BINFMT", "private");
    let out = temp_dir("xbuild-run-out-");
    let output = RunOutput::of(&mut run_command(&xbuild, out.path(), "aarch64-linux", &[]));
    output.success();
    cow(&output);
    // The sandbox's binfmt_misc is its own: one entry, naming the
    // qemu-aarch64-static unpacked from Debian's package into the cache
    // (the host's entries, qemu-arm and the rest, are not seen).
    let listed = RunOutput::of(&mut run_command(
        &xbuild,
        out.path(),
        "aarch64-linux",
        &["--", "perl", "-e", LIST_BINFMT],
    ));
    listed.success();
    let mut lines = listed.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("qemu-aarch64 register status"),
        "{}",
        listed.stdout
    );
    let interpreter = lines.next().unwrap_or_default();
    let cached = xbuild.cache_dir().join("toolchains-v1");
    assert!(
        interpreter.starts_with(&format!("interpreter {}/", cached.display()))
            && interpreter.ends_with("/qemu-aarch64-static"),
        "{}",
        listed.stdout
    );
    let program = interpreter.trim_start_matches("interpreter ");
    let version = Command::new(program).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("qemu-aarch64 version"),
        "{version:?}"
    );
}

#[test]
fn network_root_run_through_the_host_registration() {
    assert_binfmt("aarch64");
    let host = xbuild().with_env("XBUILD_RUN_BINFMT", "host");
    let out = temp_dir("xbuild-run-out-");
    let output = RunOutput::of(&mut run_command(
        &host,
        out.path(),
        "aarch64-linux",
        &["--", "perl", "-e", LIST_BINFMT],
    ));
    output.success();
    // No binfmt_misc is mounted in the sandbox: the host's entry ran perl.
    assert_eq!(output.stdout, "\n");
    let bad = RunOutput::of(&mut run_command(
        &xbuild().with_env("XBUILD_RUN_BINFMT", "qemu"),
        out.path(),
        "aarch64-linux",
        &[],
    ));
    assert_eq!(bad.status.code(), Some(125), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("XBUILD_RUN_BINFMT=\"qemu\""),
        "{}",
        bad.stderr
    );
}

#[test]
fn network_root_run_prints_what_podman_run_prints() {
    let out = temp_dir("xbuild-run-out-");
    let mine = RunOutput::of(&mut run_command(
        &xbuild(),
        out.path(),
        "aarch64-linux",
        &["--", "cowsay", "-f", "tux", "same here"],
    ));
    mine.success();
    let podman = Podman::new();
    let name = podman.load(&out.path().join("aarch64-linux.tar"), IMAGE);
    let theirs = podman.run_with_args(&name, "linux/arm64", &["cowsay", "-f", "tux", "same here"]);
    assert!(theirs.contains("same here"), "{theirs}");
    assert_eq!(mine.stdout, theirs);
}

#[test]
fn network_root_run_as_an_unprivileged_user() {
    const NOBODY: &str = "65534";
    let home = temp_dir("xbuild-run-nobody-");
    let chown = |path: &Path| {
        let status = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    std::fs::create_dir(home.path().join("cache")).unwrap();
    std::fs::create_dir(home.path().join("out")).unwrap();
    chown(home.path());
    let xbuild = Xbuild::new()
        .with_cache_dir(&home.path().join("cache"))
        .with_host_apt();
    let inner = run_command(
        &xbuild,
        &home.path().join("out"),
        "aarch64-linux",
        &[
            "--",
            "perl",
            "-e",
            "print \"uid=$< \"; open my $f, '>', '/etc/x' or die $!; print \"wrote\\n\"",
        ],
    );
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (name, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.env("HOME", home.path());
    // Unprivileged, with the emulator registered in the sandbox's own
    // binfmt_misc: the host's entries are not used.
    command.env("XBUILD_IGNORE_HOST_BINFMT", "1");
    let output = RunOutput::of(&mut command);
    output.success();
    // Root inside, the caller outside: what it made in the cache is nobody's.
    assert_eq!(output.stdout, "uid=0 wrote\n");
    use std::os::unix::fs::MetadataExt;
    let rootfs = home.path().join("cache/rootfs-v1");
    for entry in std::fs::read_dir(&rootfs).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.metadata().unwrap().uid(), 65534, "{:?}", entry.path());
    }
}

/// Lines added to /etc/subuid and /etc/subgid while a test runs, taken
/// out again when it ends (however it ends).
struct SubordinateIds {
    line: String,
}

impl SubordinateIds {
    fn add(line: &str) -> SubordinateIds {
        for file in ["/etc/subuid", "/etc/subgid"] {
            let mut text = std::fs::read_to_string(file).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(line);
            text.push('\n');
            std::fs::write(file, text).unwrap();
        }
        SubordinateIds {
            line: line.to_owned(),
        }
    }
}

impl Drop for SubordinateIds {
    fn drop(&mut self) {
        for file in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = std::fs::read_to_string(file) {
                let kept: String = text
                    .lines()
                    .filter(|line| *line != self.line)
                    .map(|line| format!("{line}\n"))
                    .collect();
                let _ = std::fs::write(file, kept);
            }
        }
    }
}

#[test]
fn network_root_run_image_user_unprivileged_needs_subordinate_ids() {
    const NOBODY: &str = "65534";
    let home = temp_dir("xbuild-run-subuid-");
    let project = home.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let manifest = std::fs::read_to_string(example().join("xbuild.toml")).unwrap();
    let manifest = manifest.replace("[image]\n", "[image]\nuser = \"1000:1000\"\n");
    std::fs::write(project.join("xbuild.toml"), manifest).unwrap();
    for dir in ["cache", "out"] {
        std::fs::create_dir(home.path().join(dir)).unwrap();
    }
    let status = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(home.path())
        .status()
        .unwrap();
    assert!(status.success());
    let run_as_nobody = || {
        let xbuild = Xbuild::new()
            .with_cache_dir(&home.path().join("cache"))
            .with_host_apt();
        let mut inner = xbuild.command();
        inner
            .arg("run")
            .arg(&project)
            .args(["--target", "aarch64-linux", "-q", "--out"])
            .arg(home.path().join("out"))
            .args([
                "--",
                "perl",
                "-e",
                "print \"$< \", (split ' ', $()[0], \"\\n\"",
            ]);
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
            .arg(inner.get_program())
            .args(inner.get_args());
        for (name, value) in inner.get_envs() {
            if let Some(value) = value {
                command.env(name, value);
            }
        }
        command.env("HOME", home.path());
        RunOutput::of(&mut command)
    };
    // Without subordinate ids for nobody, a clear refusal (125).
    let refused = run_as_nobody();
    assert_eq!(refused.status.code(), Some(125), "{}", refused.stderr);
    assert!(refused.stderr.contains("/etc/subuid"), "{}", refused.stderr);
    assert!(refused.stderr.contains("uidmap"), "{}", refused.stderr);
    // With a range, newuidmap maps it and the command runs as 1000:1000.
    let _ids = SubordinateIds::add("nobody:300000:65536");
    let output = run_as_nobody();
    output.success();
    assert_eq!(output.stdout, "1000 1000\n");
}
