//! Test signing keys made by real `gpg`, kept in one GNUPGHOME under cargo's
//! test temp dir so they are generated once, not once per test.
//!
//! Two keys live there: the *archive* key, whose public half the tests hand
//! to xbuild as the repository keyring, and an *unknown* key nobody trusts.
//! A file lock serialises generation and signing across threads and test
//! processes; the gpg-agent each signature starts is stopped again at once.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::run_ok;

/// Which key signs an `InRelease`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// The key whose public half is the fixture keyring.
    Archive,
    /// A second key that no keyring given to xbuild contains.
    Unknown,
}

pub struct Keys {
    home: PathBuf,
    archive_fingerprint: String,
    unknown_fingerprint: String,
    /// Binary (OpenPGP packets) export of the archive key's public half.
    pub archive_public: Vec<u8>,
    /// ASCII-armored export of the archive key's public half.
    pub archive_public_armored: Vec<u8>,
    /// Binary export of the unknown key's public half.
    pub unknown_public: Vec<u8>,
}

const ARCHIVE_UID: &str = "xbuild fixture archive <archive@fixture.invalid>";
const UNKNOWN_UID: &str = "xbuild unknown signer <unknown@fixture.invalid>";

/// The process-wide keys, generated on first use (or found from an earlier
/// run).
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(load_or_generate)
}

fn gpg(home: &Path) -> Command {
    let mut command = Command::new("gpg");
    command
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--yes", "--no-tty", "--quiet"]);
    command
}

/// Holds the cross-process lock until dropped.
struct HomeLock(File);

impl Drop for HomeLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn lock(parent: &Path) -> HomeLock {
    fs::create_dir_all(parent).expect("create gnupg parent dir");
    let file = File::create(parent.join("xbuild-fixture-gnupg.lock")).expect("create gnupg lock");
    file.lock().expect("lock gnupg home");
    HomeLock(file)
}

fn parent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn stop_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "gpg-agent"])
        .output();
}

fn fingerprint(home: &Path, uid: &str) -> String {
    let listing = run_ok(gpg(home).args(["--with-colons", "--list-secret-keys", uid]));
    listing
        .lines()
        .find_map(|line| line.strip_prefix("fpr:"))
        .and_then(|rest| rest.split(':').find(|field| field.len() == 40))
        .unwrap_or_else(|| panic!("no fingerprint for {uid} in:\n{listing}"))
        .to_owned()
}

fn load_or_generate() -> Keys {
    let parent = parent_dir();
    let home = parent.join("xbuild-fixture-gnupg");
    let ready = home.join("xbuild-ready");
    let _lock = lock(&parent);
    if !ready.exists() {
        let _ = fs::remove_dir_all(&home);
        fs::create_dir_all(&home).expect("create GNUPGHOME");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod GNUPGHOME");
        }
        for uid in [ARCHIVE_UID, UNKNOWN_UID] {
            run_ok(gpg(&home).args([
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
                "--quick-gen-key",
                uid,
                "rsa3072",
                "sign",
                "never",
            ]));
        }
        stop_agent(&home);
        fs::write(&ready, b"ok\n").expect("mark GNUPGHOME ready");
    }
    let archive_fingerprint = fingerprint(&home, ARCHIVE_UID);
    let unknown_fingerprint = fingerprint(&home, UNKNOWN_UID);
    let export = |fingerprint: &str, armor: bool| {
        let mut command = gpg(&home);
        if armor {
            command.arg("--armor");
        }
        let output = command
            .args(["--export", fingerprint])
            .output()
            .expect("run gpg --export");
        assert!(
            output.status.success() && !output.stdout.is_empty(),
            "gpg --export {fingerprint} failed"
        );
        output.stdout
    };
    let keys = Keys {
        archive_public: export(&archive_fingerprint, false),
        archive_public_armored: export(&archive_fingerprint, true),
        unknown_public: export(&unknown_fingerprint, false),
        home: home.clone(),
        archive_fingerprint,
        unknown_fingerprint,
    };
    stop_agent(&home);
    keys
}

impl Keys {
    /// Clear-signs `release` into `inrelease` (`gpg --clearsign`, SHA-256).
    pub fn clearsign(&self, signer: Signer, release: &Path, inrelease: &Path) {
        let fingerprint = match signer {
            Signer::Archive => &self.archive_fingerprint,
            Signer::Unknown => &self.unknown_fingerprint,
        };
        let _lock = lock(&parent_dir());
        // The agent stopped after the previous signature may still be
        // going away, and then refuses this one ("can't connect to the
        // agent"): a fresh attempt starts a new agent.
        let mut attempts = 0;
        let output = loop {
            attempts += 1;
            let result = gpg(&self.home)
                .args(["--passphrase", "", "--pinentry-mode", "loopback"])
                .args(["--digest-algo", "SHA256", "--local-user"])
                .arg(format!("{fingerprint}!"))
                .arg("--output")
                .arg(inrelease)
                .arg("--clearsign")
                .arg(release)
                .output();
            stop_agent(&self.home);
            let output = result.expect("run gpg --clearsign");
            let agent_gone = String::from_utf8_lossy(&output.stderr).contains("agent");
            if output.status.success() || !agent_gone || attempts == 3 {
                break output;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert!(
            output.status.success(),
            "gpg --clearsign failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
