//! `[[account]]` tables and `[image] ca-certificates`: what the configure
//! layer (see [`crate::configure`]) adds to an image besides what its
//! packages imply — user accounts, and certificate authorities to trust.
//!
//! ```toml
//! [[account]]
//! name = "app"      # login name
//! uid = 1000
//! gid = 1000        # default: the uid; a group NAME is made unless one has it
//! home = "/srv/app" # default: /home/NAME
//! shell = "/bin/sh" # default: /usr/sbin/nologin
//! ```

use super::{ManifestError, TextPosition, Validator};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The shell of an account unless `shell` says otherwise.
pub const DEFAULT_SHELL: &str = "/usr/sbin/nologin";

/// Accounts every image has; `[[account]]` tables may not redefine them.
pub const BUILTIN_ACCOUNTS: [(&str, u32); 2] = [("root", 0), ("nobody", 65534)];

/// Longest login name (useradd's limit on Debian).
const MAXIMUM_NAME_LENGTH: usize = 32;

/// One `[[account]]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSpec {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Whether `gid` was written (else it is the uid).
    pub gid_given: bool,
    /// Absolute home directory, created owned by the account.
    pub home: String,
    pub shell: String,
    /// Where its `name` is in the manifest, for errors found while building.
    pub position: TextPosition,
}

/// One `[image] ca-certificates` entry: a PEM certificate file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificate {
    /// The file, resolved against the manifest's directory.
    pub path: PathBuf,
    /// `NAME.crt`: its name under `/usr/local/share/ca-certificates/`.
    pub name: String,
    /// The file's bytes, read (and checked) with the manifest.
    pub contents: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawAccount {
    name: Spanned<String>,
    uid: Spanned<i64>,
    gid: Option<Spanned<i64>>,
    home: Option<Spanned<String>>,
    shell: Option<Spanned<String>>,
}

/// Login names as Debian's adduser accepts them by default, and short
/// enough for utmp.
fn check_account_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let valid_first = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_');
    let valid_rest = characters.all(|character| {
        character.is_ascii_lowercase()
            || character.is_ascii_digit()
            || matches!(character, '_' | '-')
    });
    if valid_first && valid_rest && name.len() <= MAXIMUM_NAME_LENGTH {
        Ok(())
    } else {
        Err(format!(
            "account name `{name}` is not valid: lowercase letters, digits, `_` and `-`, \
             starting with a letter or `_`, at most {MAXIMUM_NAME_LENGTH} characters"
        ))
    }
}

fn check_absolute(path: &str, what: &str) -> Result<(), String> {
    if path.starts_with('/')
        && !path.contains(['\0', ':', '\n'])
        && !path.split('/').any(|part| part == "..")
    {
        Ok(())
    } else {
        Err(format!(
            "{what} `{path}` must be an absolute path without `..` or `:`"
        ))
    }
}

/// A uid or gid: 0 to 2³²−2, not 65535 (`(uint16_t) -1`).
fn check_id(value: i64, what: &str) -> Result<u32, String> {
    match u32::try_from(value) {
        Ok(id) if id != u32::MAX && id != 65535 => Ok(id),
        _ => Err(format!(
            "{what} {value} is not valid: expected 0 to 4294967294, not 65535"
        )),
    }
}

/// Whether `text` is one or more PEM `CERTIFICATE` blocks (and nothing
/// else but blank lines and text outside blocks, as OpenSSL allows).
pub fn check_pem_certificates(text: &str) -> Result<usize, String> {
    let mut count = 0;
    let mut inside = false;
    let mut body = 0usize;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let number = index + 1;
        if line == "-----BEGIN CERTIFICATE-----" {
            if inside {
                return Err(format!("line {number}: a BEGIN CERTIFICATE inside a block"));
            }
            inside = true;
            body = 0;
        } else if line == "-----END CERTIFICATE-----" {
            if !inside || body == 0 {
                return Err(format!(
                    "line {number}: END CERTIFICATE without a certificate"
                ));
            }
            inside = false;
            count += 1;
        } else if inside {
            let base64 = line
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='));
            if !base64 {
                return Err(format!("line {number}: not base64 inside a certificate"));
            }
            body += line.len();
        } else if line.starts_with("-----BEGIN ") {
            return Err(format!(
                "line {number}: `{line}` is not a certificate (a private key?)"
            ));
        }
    }
    if inside {
        return Err("the last certificate has no END CERTIFICATE line".to_owned());
    }
    if count == 0 {
        return Err("it holds no `-----BEGIN CERTIFICATE-----` block".to_owned());
    }
    Ok(count)
}

impl Validator<'_> {
    pub(super) fn accounts(&self, raw: Vec<RawAccount>) -> Result<Vec<AccountSpec>, ManifestError> {
        let mut accounts: Vec<AccountSpec> = Vec::new();
        let mut names: BTreeMap<String, ()> = BTreeMap::new();
        for account in raw {
            let name = account.name.get_ref();
            check_account_name(name).map_err(|message| self.error(account.name.span(), message))?;
            if let Some((_, uid)) = BUILTIN_ACCOUNTS.iter().find(|(builtin, _)| builtin == name) {
                return Err(self.error(
                    account.name.span(),
                    format!("account `{name}` (uid {uid}) is in every image already"),
                ));
            }
            if names.insert(name.clone(), ()).is_some() {
                return Err(self.error(
                    account.name.span(),
                    format!("account `{name}` is defined twice"),
                ));
            }
            let uid = check_id(*account.uid.get_ref(), "uid")
                .map_err(|message| self.error(account.uid.span(), message))?;
            if let Some((builtin, _)) = BUILTIN_ACCOUNTS.iter().find(|(_, id)| *id == uid) {
                return Err(self.error(
                    account.uid.span(),
                    format!("uid {uid} is `{builtin}`'s, which every image has"),
                ));
            }
            if let Some(other) = accounts.iter().find(|other| other.uid == uid) {
                return Err(self.error(
                    account.uid.span(),
                    format!("uid {uid} is also account `{}`'s", other.name),
                ));
            }
            let gid = match &account.gid {
                Some(gid) => check_id(*gid.get_ref(), "gid")
                    .map_err(|message| self.error(gid.span(), message))?,
                None => uid,
            };
            if account.gid.is_none()
                && let Some(other) = accounts.iter().find(|other| other.gid == gid)
            {
                return Err(self.error(
                    account.uid.span(),
                    format!(
                        "gid {gid} (the default, the uid) is account `{}`'s group; \
                         write `gid = {gid}` to share it, or choose another gid",
                        other.name
                    ),
                ));
            }
            let home = match &account.home {
                Some(home) => {
                    check_absolute(home.get_ref(), "home")
                        .map_err(|message| self.error(home.span(), message))?;
                    home.get_ref().trim_end_matches('/').to_owned()
                }
                None => format!("/home/{name}"),
            };
            if home.is_empty() || home == "/" {
                return Err(self.error(
                    account
                        .home
                        .as_ref()
                        .map_or(account.name.span(), Spanned::span),
                    "home `/` is not valid: an account's home is a directory of its own",
                ));
            }
            let shell = match &account.shell {
                Some(shell) => {
                    check_absolute(shell.get_ref(), "shell")
                        .map_err(|message| self.error(shell.span(), message))?;
                    shell.get_ref().clone()
                }
                None => DEFAULT_SHELL.to_owned(),
            };
            accounts.push(AccountSpec {
                name: name.clone(),
                uid,
                gid,
                gid_given: account.gid.is_some(),
                home,
                shell,
                position: TextPosition::at_offset(self.text, account.name.span().start),
            });
        }
        Ok(accounts)
    }

    /// `[image] ca-certificates`: each a PEM certificate file, read now.
    pub(super) fn ca_certificates(
        &self,
        raw: Vec<Spanned<String>>,
        dir: &Path,
    ) -> Result<Vec<CaCertificate>, ManifestError> {
        let mut certificates: Vec<CaCertificate> = Vec::new();
        for entry in raw {
            let path = dir.join(entry.get_ref());
            let contents = fs_err::read(&path).map_err(|error| {
                self.error(
                    entry.span(),
                    format!("cannot read CA certificate {}: {error}", path.display()),
                )
            })?;
            let text = std::str::from_utf8(&contents).map_err(|_| {
                self.error(
                    entry.span(),
                    format!("CA certificate {} is not PEM text", path.display()),
                )
            })?;
            check_pem_certificates(text).map_err(|message| {
                self.error(
                    entry.span(),
                    format!("{} is not a PEM certificate: {message}", path.display()),
                )
            })?;
            let stem = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            if stem.is_empty() || stem.starts_with('.') || stem.contains(char::is_whitespace) {
                return Err(self.error(
                    entry.span(),
                    format!(
                        "CA certificate {}: its file name is not usable in the image",
                        path.display()
                    ),
                ));
            }
            let name = format!("{stem}.crt");
            if certificates.iter().any(|other| other.name == name) {
                return Err(self.error(
                    entry.span(),
                    format!("two CA certificates would both be installed as {name}"),
                ));
            }
            certificates.push(CaCertificate {
                path,
                name,
                contents,
            });
        }
        Ok(certificates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_certificates_are_told_from_other_files() {
        let good = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(check_pem_certificates(good), Ok(1));
        assert!(check_pem_certificates("hello\n").is_err());
        let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        assert!(
            check_pem_certificates(key)
                .unwrap_err()
                .contains("private key")
        );
        let open = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(check_pem_certificates(open).is_err());
        let bad = "-----BEGIN CERTIFICATE-----\nMI IB\n-----END CERTIFICATE-----\n";
        assert!(check_pem_certificates(bad).is_err());
    }
}
