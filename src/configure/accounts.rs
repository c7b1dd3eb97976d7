//! `/etc/passwd` and `/etc/group`: what base-passwd's postinst copies from
//! `/usr/share/base-passwd/{passwd,group}.master` when the package is in
//! the image, else root and nobody as Debian's master files have them;
//! then every `[[account]]`, each with a group of its own unless one has
//! its gid, and its home directory (mode 0700, owned by the account).
//! No `/etc/shadow` is written: every password field is `*` (locked), as
//! in the master files, so no account can log in with a password.

use super::{ConfigureError, Owners};
use crate::manifest::{AccountSpec, TextPosition};
use std::path::{Path, PathBuf};

/// Mode of a home directory made for an `[[account]]` (adduser's default).
pub const HOME_MODE: u32 = 0o700;

/// Root and nobody when base-passwd is not in the image, as its master
/// files have them (root's shell is `/bin/sh`: bash may not be there).
const BUILTIN_PASSWD: &str = "root:*:0:0:root:/root:/bin/sh\n\
                              nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const BUILTIN_GROUP: &str = "root:*:0:\nnogroup:*:65534:\n";

/// The base-passwd master files, when the package is in the image.
pub struct MasterFiles {
    pub passwd: String,
    pub group: String,
}

/// One `/etc/passwd` line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One `/etc/group` line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
}

/// The accounts of an image, as written.
#[derive(Debug)]
pub struct Accounts {
    pub passwd: Vec<PasswdEntry>,
    pub group: Vec<GroupEntry>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: (*fields.first()?).to_owned(),
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: (*fields.first()?).to_owned(),
                gid: fields.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// Writes `etc/passwd`, `etc/group` and the homes under `root`; returns the
/// accounts and records the homes' owners.
pub fn write(
    root: &Path,
    master: Option<&MasterFiles>,
    accounts: &[AccountSpec],
    manifest: &Path,
    owners: &mut Owners,
) -> Result<Accounts, ConfigureError> {
    let (mut passwd_text, mut group_text, source) = match master {
        Some(master) => (
            master.passwd.clone(),
            master.group.clone(),
            "base-passwd's passwd.master",
        ),
        None => (
            BUILTIN_PASSWD.to_owned(),
            BUILTIN_GROUP.to_owned(),
            "the built-in accounts",
        ),
    };
    for text in [&mut passwd_text, &mut group_text] {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let mut passwd = parse_passwd(&passwd_text);
    let mut group = parse_group(&group_text);
    let clash = |account: &AccountSpec, message: String| ConfigureError::Account {
        manifest: manifest.to_owned(),
        position: account.position,
        message,
    };
    for account in accounts {
        if let Some(other) = passwd.iter().find(|entry| entry.name == account.name) {
            return Err(clash(
                account,
                format!(
                    "account `{}` is in {source} already (uid {})",
                    account.name, other.uid
                ),
            ));
        }
        if let Some(other) = passwd.iter().find(|entry| entry.uid == account.uid) {
            return Err(clash(
                account,
                format!(
                    "uid {} of account `{}` is `{}`'s in {source}",
                    account.uid, account.name, other.name
                ),
            ));
        }
        let has_gid = group.iter().any(|entry| entry.gid == account.gid);
        if !has_gid {
            if let Some(other) = group.iter().find(|entry| entry.name == account.name) {
                return Err(clash(
                    account,
                    format!(
                        "group `{}` exists with gid {}, not {}; set `gid = {}`",
                        account.name, other.gid, account.gid, other.gid
                    ),
                ));
            }
            group_text.push_str(&format!("{}:*:{}:\n", account.name, account.gid));
            group.push(GroupEntry {
                name: account.name.clone(),
                gid: account.gid,
            });
        } else if !account.gid_given {
            let other = group.iter().find(|entry| entry.gid == account.gid);
            return Err(clash(
                account,
                format!(
                    "gid {} (the default, the uid) is group `{}`'s in {source}; \
                     write `gid = {}` to share it, or choose another gid",
                    account.gid,
                    other.map_or("", |entry| entry.name.as_str()),
                    account.gid
                ),
            ));
        }
        passwd_text.push_str(&format!(
            "{}:*:{}:{}::{}:{}\n",
            account.name, account.uid, account.gid, account.home, account.shell
        ));
        passwd.push(PasswdEntry {
            name: account.name.clone(),
            uid: account.uid,
            gid: account.gid,
        });
    }
    let etc = root.join("etc");
    super::write_file(&etc.join("passwd"), passwd_text.as_bytes(), 0o644)?;
    super::write_file(&etc.join("group"), group_text.as_bytes(), 0o644)?;
    super::make_dir(&root.join("root"), 0o700)?;
    for account in accounts {
        let home = root.join(account.home.trim_start_matches('/'));
        if let Some(parent) = home.parent() {
            super::make_dir(parent, 0o755)?;
        }
        super::make_dir(&home, HOME_MODE)?;
        owners.insert(
            PathBuf::from(account.home.trim_start_matches('/')),
            (account.uid, account.gid),
        );
    }
    Ok(Accounts { passwd, group })
}

/// Checks `[image] user` (`name`, `uid`, `name:group`, `uid:gid`): a name
/// must be an account (group) of the image; numbers pass through.
pub fn check_user(
    user: &str,
    position: Option<TextPosition>,
    accounts: &Accounts,
    manifest: &Path,
) -> Result<(), ConfigureError> {
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let numeric = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let error = |message: String| ConfigureError::User {
        manifest: manifest.to_owned(),
        position,
        message,
    };
    if !numeric(name) && !accounts.passwd.iter().any(|entry| entry.name == name) {
        let known: Vec<&str> = accounts
            .passwd
            .iter()
            .map(|entry| entry.name.as_str())
            .collect();
        return Err(error(format!(
            "[image] user `{user}`: the image has no account `{name}` (it has {}); \
             add an [[account]] with name = \"{name}\", or give a numeric uid",
            known.join(", ")
        )));
    }
    if let Some(group) = group
        && !numeric(group)
        && !accounts.group.iter().any(|entry| entry.name == group)
    {
        let known: Vec<&str> = accounts
            .group
            .iter()
            .map(|entry| entry.name.as_str())
            .collect();
        return Err(error(format!(
            "[image] user `{user}`: the image has no group `{group}` (it has {})",
            known.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, uid: u32, gid: Option<u32>) -> AccountSpec {
        AccountSpec {
            name: name.to_owned(),
            uid,
            gid: gid.unwrap_or(uid),
            gid_given: gid.is_some(),
            home: format!("/home/{name}"),
            shell: "/usr/sbin/nologin".to_owned(),
            position: TextPosition { line: 3, column: 8 },
        }
    }

    #[test]
    fn accounts_are_added_after_the_builtin_ones_with_their_groups_and_homes() {
        let root = tempfile::tempdir().unwrap();
        let mut owners = Owners::new();
        let manifest = Path::new("xbuild.toml");
        let accounts = write(
            root.path(),
            None,
            &[
                account("app", 1000, None),
                account("web", 1001, Some(65534)),
            ],
            manifest,
            &mut owners,
        )
        .unwrap();
        let passwd = fs_err::read_to_string(root.path().join("etc/passwd")).unwrap();
        assert_eq!(
            passwd,
            "root:*:0:0:root:/root:/bin/sh\n\
             nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
             app:*:1000:1000::/home/app:/usr/sbin/nologin\n\
             web:*:1001:65534::/home/web:/usr/sbin/nologin\n"
        );
        let group = fs_err::read_to_string(root.path().join("etc/group")).unwrap();
        assert_eq!(group, "root:*:0:\nnogroup:*:65534:\napp:*:1000:\n");
        assert_eq!(owners[Path::new("home/app")], (1000, 1000));
        assert!(root.path().join("home/web").is_dir());
        check_user("app", None, &accounts, manifest).unwrap();
        check_user("1234:5", None, &accounts, manifest).unwrap();
        check_user("web:nogroup", None, &accounts, manifest).unwrap();
        let error = check_user(
            "bob",
            Some(TextPosition { line: 4, column: 8 }),
            &accounts,
            manifest,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("xbuild.toml:4:8: [image] user `bob`"),
            "{error}"
        );
        assert!(check_user("app:staff", None, &accounts, manifest).is_err());
    }

    #[test]
    fn an_account_clashing_with_base_passwd_is_an_error_naming_the_manifest() {
        let root = tempfile::tempdir().unwrap();
        let master = MasterFiles {
            passwd:
                "root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                    .to_owned(),
            group: "root:*:0:\ndaemon:*:1:\n".to_owned(),
        };
        let error = write(
            root.path(),
            Some(&master),
            &[account("svc", 1, Some(1))],
            Path::new("p/xbuild.toml"),
            &mut Owners::new(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "p/xbuild.toml:3:8: uid 1 of account `svc` is `daemon`'s in base-passwd's passwd.master"
        );
    }
}
