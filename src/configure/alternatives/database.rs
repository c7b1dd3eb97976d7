//! What a sequence of `update-alternatives --install` calls leaves in a
//! root: the link groups as `update-alternatives` keeps them between calls
//! (loaded sorted, changed, saved), then the links of each group's choice
//! and its database file. Ties keep the current choice (dpkg 1.21's
//! `alternative_get_best`), so among choices of the highest priority the
//! one registered first wins.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{ADMIN_DIRECTORY, ALTERNATIVES_DIRECTORY, Install, Slave, check_install};

/// What [`apply`] did with a link group, or with a call it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// The group `name` points at `path` (registered by `package`).
    Linked {
        name: String,
        package: String,
        link: String,
        path: String,
        priority: i32,
        /// Slaves of the choice that got their links.
        slaves: Vec<Slave>,
        /// Slaves of the choice whose path is not in the image: no links,
        /// as `update-alternatives` does.
        missing_slaves: Vec<Slave>,
        /// Links not made because a file that is not a symlink is there
        /// (`update-alternatives`: "not replacing … with a link").
        not_replaced: Vec<String>,
    },
    /// A call that `update-alternatives` would have refused: nothing of it
    /// is in the root.
    Skipped {
        name: String,
        package: String,
        path: String,
        reason: SkipReason,
    },
}

/// Why a call was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The choice's path is not in the image ("alternative path … doesn't
    /// exist").
    PathMissing,
    /// A name or link already belongs to another group.
    Conflict(String),
    /// A name, link or path `update-alternatives` refuses, or one that
    /// leaves the root (`..`).
    Invalid(String),
}

/// One registered choice of a group.
#[derive(Debug, Clone)]
struct Choice {
    path: String,
    priority: i32,
    /// Slave name → path.
    slaves: BTreeMap<String, String>,
    package: String,
}

/// A link group between two calls.
#[derive(Debug, Clone)]
struct Group {
    master_link: String,
    /// (name, link), in the database's order once saved.
    slaves: Vec<(String, String)>,
    choices: Vec<Choice>,
    /// Index into `choices`.
    current: usize,
}

impl Group {
    /// `alternative_get_best`: the current choice unless another has a
    /// higher priority (ties keep the current one), the first such in
    /// the list; with no current choice, the first of the list.
    fn best(&self, current: Option<&str>) -> usize {
        let mut best = current
            .and_then(|path| self.choices.iter().position(|choice| choice.path == path))
            .unwrap_or(0);
        for (index, choice) in self.choices.iter().enumerate() {
            if choice.priority > self.choices[best].priority {
                best = index;
            }
        }
        best
    }

    /// `alternative_save`: unused slaves dropped, slaves sorted by name
    /// and choices by path (what the next call loads).
    fn save(&mut self) {
        let choices = &self.choices;
        self.slaves.retain(|(name, _)| {
            choices
                .iter()
                .any(|choice| choice.slaves.contains_key(name))
        });
        self.slaves.sort_by(|a, b| a.0.cmp(&b.0));
        let current = self.choices[self.current].path.clone();
        self.choices.sort_by(|a, b| a.path.cmp(&b.path));
        self.current = self
            .choices
            .iter()
            .position(|choice| choice.path == current)
            .expect("the current choice is registered");
    }

    /// The database file, byte for byte.
    fn database(&self) -> String {
        let mut text = format!("auto\n{}\n", self.master_link);
        for (name, link) in &self.slaves {
            text.push_str(&format!("{name}\n{link}\n"));
        }
        text.push('\n');
        for choice in &self.choices {
            text.push_str(&format!("{}\n{}\n", choice.path, choice.priority));
            for (name, _) in &self.slaves {
                text.push_str(choice.slaves.get(name).map_or("", String::as_str));
                text.push('\n');
            }
        }
        text.push('\n');
        text
    }
}

/// Does in `root` what `update-alternatives --install` does for each of
/// `installs` (package, call), in order — the order their postinsts would
/// run — from an empty database: for each group the choice auto mode
/// picks, the links `LINK -> /etc/alternatives/NAME`,
/// `etc/alternatives/NAME -> PATH` (and the same for each slave of the
/// choice whose path `exists`) and `var/lib/dpkg/alternatives/NAME`.
/// `exists` answers for an absolute path of the image (following
/// symlinks, as `stat` does). Returns the groups (by name), then the calls
/// skipped.
pub fn apply(
    root: &Path,
    installs: &[(String, Install)],
    exists: &dyn Fn(&str) -> bool,
) -> io::Result<Vec<Chosen>> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (package, install) in installs {
        let skip = |reason| Chosen::Skipped {
            name: install.name.clone(),
            package: package.clone(),
            path: install.path.clone(),
            reason,
        };
        if let Err(reason) = check_install(install).and_then(|()| check_inside(install)) {
            skipped.push(skip(SkipReason::Invalid(reason)));
            continue;
        }
        if !exists(&install.path) {
            skipped.push(skip(SkipReason::PathMissing));
            continue;
        }
        if let Err(conflict) = check_conflicts(&groups, install) {
            skipped.push(skip(SkipReason::Conflict(conflict)));
            continue;
        }
        register(&mut groups, package, install);
    }
    let mut chosen = Vec::new();
    for (name, group) in &groups {
        chosen.push(write_group(root, name, group, exists)?);
    }
    chosen.extend(skipped);
    Ok(chosen)
}

/// One `--install` on the groups (`alternative_evolve`,
/// `alternative_add_choice`, auto mode's best, `alternative_save`).
fn register(groups: &mut BTreeMap<String, Group>, package: &str, install: &Install) {
    let choice = Choice {
        path: install.path.clone(),
        priority: install.priority,
        slaves: install
            .slaves
            .iter()
            .map(|slave| (slave.name.clone(), slave.path.clone()))
            .collect(),
        package: package.to_owned(),
    };
    let is_new = !groups.contains_key(&install.name);
    let group = groups.entry(install.name.clone()).or_insert_with(|| Group {
        master_link: install.link.clone(),
        slaves: Vec::new(),
        choices: Vec::new(),
        current: 0,
    });
    group.master_link = install.link.clone();
    for slave in &install.slaves {
        match group
            .slaves
            .iter_mut()
            .find(|(name, _)| *name == slave.name)
        {
            Some((_, link)) => *link = slave.link.clone(),
            None => group.slaves.push((slave.name.clone(), slave.link.clone())),
        }
    }
    match group
        .choices
        .iter_mut()
        .find(|existing| existing.path == choice.path)
    {
        Some(existing) => *existing = choice,
        None => group.choices.push(choice),
    }
    let current = (!is_new).then(|| group.choices[group.current].path.clone());
    group.current = group.best(current.as_deref());
    group.save();
}

/// `alternative_check_install_args`: names and links of other groups.
fn check_conflicts(groups: &BTreeMap<String, Group>, install: &Install) -> Result<(), String> {
    for (other_name, other) in groups {
        if *other_name == install.name {
            for slave in &install.slaves {
                if let Some((name, _)) = other
                    .slaves
                    .iter()
                    .find(|(name, link)| *link == slave.link && *name != slave.name)
                {
                    return Err(format!(
                        "alternative link {} is already managed by {name} (slave of {other_name})",
                        slave.link
                    ));
                }
            }
            continue;
        }
        let is_slave_name = |name: &str| other.slaves.iter().any(|(slave, _)| slave == name);
        let manages_link = |link: &str| {
            other.master_link == link || other.slaves.iter().any(|(_, slave)| slave == link)
        };
        if is_slave_name(&install.name) {
            return Err(format!(
                "alternative {} can't be master: it is a slave of {other_name}",
                install.name
            ));
        }
        if manages_link(&install.link) {
            return Err(format!(
                "alternative link {} is already managed by {other_name}",
                install.link
            ));
        }
        for slave in &install.slaves {
            if slave.name == *other_name || is_slave_name(&slave.name) {
                return Err(format!(
                    "alternative {} can't be slave of {}: it belongs to {other_name}",
                    slave.name, install.name
                ));
            }
            if manages_link(&slave.link) {
                return Err(format!(
                    "alternative link {} is already managed by {other_name}",
                    slave.link
                ));
            }
        }
    }
    Ok(())
}

/// Every link and path stays inside the root.
fn check_inside(install: &Install) -> Result<(), String> {
    let paths = [&install.link, &install.path].into_iter().chain(
        install
            .slaves
            .iter()
            .flat_map(|slave| [&slave.link, &slave.path]),
    );
    for path in paths {
        if Path::new(path)
            .components()
            .any(|component| matches!(component, Component::ParentDir))
        {
            return Err(format!("`{path}` has a `..` component"));
        }
    }
    Ok(())
}

fn write_group(
    root: &Path,
    name: &str,
    group: &Group,
    exists: &dyn Fn(&str) -> bool,
) -> io::Result<Chosen> {
    let choice = &group.choices[group.current];
    let mut not_replaced = Vec::new();
    let mut slaves = Vec::new();
    let mut missing_slaves = Vec::new();
    let alternatives = Path::new("/").join(ALTERNATIVES_DIRECTORY);
    link(
        root,
        &alternatives.join(name),
        &choice.path,
        &mut not_replaced,
    )?;
    link(
        root,
        Path::new(&group.master_link),
        &alternatives.join(name).to_string_lossy(),
        &mut not_replaced,
    )?;
    for (slave_name, slave_link) in &group.slaves {
        let Some(path) = choice.slaves.get(slave_name) else {
            continue;
        };
        let slave = Slave {
            link: slave_link.clone(),
            name: slave_name.clone(),
            path: path.clone(),
        };
        if !exists(path) {
            missing_slaves.push(slave);
            continue;
        }
        link(
            root,
            &alternatives.join(slave_name),
            path,
            &mut not_replaced,
        )?;
        link(
            root,
            Path::new(slave_link),
            &alternatives.join(slave_name).to_string_lossy(),
            &mut not_replaced,
        )?;
        slaves.push(slave);
    }
    let database = inside(root, &Path::new("/").join(ADMIN_DIRECTORY).join(name));
    create_parent(&database)?;
    fs_err::write(&database, group.database())?;
    Ok(Chosen::Linked {
        name: name.to_owned(),
        package: choice.package.clone(),
        link: group.master_link.clone(),
        path: choice.path.clone(),
        priority: choice.priority,
        slaves,
        missing_slaves,
        not_replaced,
    })
}

/// `root` + an absolute image path.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs_err::create_dir_all(parent),
        None => Ok(()),
    }
}

/// `link_path` (an image path) becomes a symlink to `target`, replacing a
/// symlink there but not another file.
fn link(
    root: &Path,
    link_path: &Path,
    target: &str,
    not_replaced: &mut Vec<String>,
) -> io::Result<()> {
    let path = inside(root, link_path);
    match fs_err::symlink_metadata(&path) {
        Ok(metadata) if metadata.file_type().is_symlink() => fs_err::remove_file(&path)?,
        Ok(_) => {
            not_replaced.push(link_path.to_string_lossy().into_owned());
            return Ok(());
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => create_parent(&path)?,
        Err(error) => return Err(error),
    }
    fs_err::os::unix::fs::symlink(target, &path)
}
