use super::*;
use crate::debian::package::{MultiArch, parse_provides, parse_relation_list, parse_relations};
use crate::hash::Sha256Digest;

/// A package from compact text: `name version [field=value;...]`, with
/// fields `d` (Depends), `p` (Pre-Depends), `v` (Provides), `c`
/// (Conflicts), `b` (Breaks), `m` (Multi-Arch), `a` (Architecture),
/// `r` (Priority).
pub(super) fn package(spec: &str) -> Package {
    let (head, fields) = spec.split_once(';').unwrap_or((spec, ""));
    let (name, version) = head.trim().split_once(' ').unwrap();
    let mut package = Package {
        name: name.to_string(),
        version: version.parse().unwrap(),
        architecture: "arm64".to_string(),
        multi_arch: MultiArch::No,
        essential: false,
        priority: None,
        section: None,
        source: None,
        built_using: None,
        depends: Vec::new(),
        pre_depends: Vec::new(),
        provides: Vec::new(),
        conflicts: Vec::new(),
        breaks: Vec::new(),
        filename: format!("pool/{name}.deb"),
        size: 1,
        sha256: Sha256Digest([0; 32]),
        installed_size_kib: None,
    };
    for field in fields.split(';').filter(|field| !field.trim().is_empty()) {
        let (key, value) = field.split_once('=').unwrap();
        match key.trim() {
            "d" => package.depends = parse_relations(value, "arm64").unwrap(),
            "p" => package.pre_depends = parse_relations(value, "arm64").unwrap(),
            "v" => package.provides = parse_provides(value, "arm64").unwrap(),
            "c" => package.conflicts = parse_relation_list(value, "arm64").unwrap(),
            "b" => package.breaks = parse_relation_list(value, "arm64").unwrap(),
            "a" => package.architecture = value.to_string(),
            "r" => package.priority = Some(value.to_string()),
            "m" => {
                package.multi_arch = match value {
                    "allowed" => MultiArch::Allowed,
                    "foreign" => MultiArch::Foreign,
                    "same" => MultiArch::Same,
                    _ => MultiArch::No,
                }
            }
            other => panic!("unknown field {other}"),
        }
    }
    package
}

pub(super) fn universe(specs: &[&str]) -> Universe {
    Universe::new(specs.iter().map(|spec| package(spec)).collect())
}

pub(super) fn request(include: &[&str], exclude: &[&str]) -> Request {
    Request {
        include: include.iter().map(ToString::to_string).collect(),
        exclude: exclude.iter().map(ToString::to_string).collect(),
        install_time_dependencies: false,
        without_dependencies: false,
    }
}

/// `name version` of every selected package.
pub(super) fn closure(universe: &Universe, request: &Request) -> Vec<String> {
    let resolution = resolve(universe, request).unwrap_or_else(|error| panic!("{error}"));
    resolution
        .packages
        .iter()
        .map(|resolved| format!("{} {}", resolved.package.name, resolved.package.version))
        .collect()
}

#[test]
fn alternatives_prefer_selected_then_first_satisfiable() {
    let specs = ["app 1;d=missing | b | c", "b 1", "c 1", "both 1;d=app, c"];
    let universe = universe(&specs);
    assert_eq!(
        closure(&universe, &request(&["app"], &[])),
        ["app 1", "b 1"]
    );
    assert_eq!(
        closure(&universe, &request(&["c", "app"], &[])),
        ["app 1", "c 1"]
    );
    // Depth first, as apt: `both` selects app, whose relation is met (by
    // b) before both's `c` is looked at.
    assert_eq!(
        closure(&universe, &request(&["both"], &[])),
        ["app 1", "b 1", "both 1", "c 1"]
    );
}

#[test]
fn highest_satisfying_version_with_epochs() {
    let universe = universe(&[
        "app 1;d=lib (<< 1:0)",
        "lib 1.0",
        "lib 2.0",
        "lib 1:0.5",
        "new 1;d=lib (>= 1:0.1)",
    ]);
    assert_eq!(
        closure(&universe, &request(&["app"], &[])),
        ["app 1", "lib 2.0"]
    );
    assert_eq!(
        closure(&universe, &request(&["new"], &[])),
        ["lib 1:0.5", "new 1"]
    );
    assert_eq!(closure(&universe, &request(&["lib=1.0"], &[])), ["lib 1.0"]);
    let error = resolve(&universe, &request(&["lib=3"], &[])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no version 3 of package lib in the index; available: 1:0.5, 2.0, 1.0"
    );
}

#[test]
fn virtual_packages_by_priority_then_name() {
    let universe = universe(&[
        "app 1;d=mail-transport-agent",
        "zmail 1;v=mail-transport-agent;r=standard",
        "amail 1;v=mail-transport-agent;r=optional",
        "bmail 1;v=mail-transport-agent;r=standard",
    ]);
    assert_eq!(
        closure(&universe, &request(&["app"], &[])),
        ["app 1", "bmail 1"]
    );
    assert_eq!(
        closure(&universe, &request(&["app", "amail"], &[])),
        ["amail 1", "app 1"]
    );
    assert_eq!(
        closure(&universe, &request(&["app"], &["bmail"])),
        ["app 1", "zmail 1"]
    );
    assert_eq!(
        closure(&universe, &request(&["mail-transport-agent"], &[])),
        ["bmail 1"]
    );
}

#[test]
fn versioned_provides() {
    let specs = [
        "app 1;d=libv (>= 2)",
        "plain 1;v=libv",
        "old 1;v=libv (= 1.5)",
        "good 1;v=libv (= 2.1)",
    ];
    assert_eq!(
        closure(&universe(&specs), &request(&["app"], &[])),
        ["app 1", "good 1"]
    );
    let error = resolve(&universe(&specs[..3]), &request(&["app"], &[])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot satisfy \"libv (>= 2)\" needed by app: available: \
         plain 1 provides libv, old 1 provides libv (= 1.5)"
    );
}

#[test]
fn unsatisfiable_names_the_chain() {
    let universe = universe(&[
        "app 1;d=libbar",
        "libbar 1;d=libfoo (>= 2)",
        "libfoo 1.0",
        "lone 1;d=nothing",
    ]);
    let error = resolve(&universe, &request(&["app"], &[])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot satisfy \"libfoo (>= 2)\" needed by app → libbar: available: libfoo 1.0"
    );
    let ResolveError::Unsatisfiable { chain, .. } = error else {
        panic!()
    };
    assert_eq!(chain, ["app", "libbar"]);
    let error = resolve(&universe, &request(&["lone"], &[])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot satisfy \"nothing\" needed by lone: available: none"
    );
}

#[test]
fn exclusions_prune_and_are_recorded() {
    let universe = universe(&["app 1;d=b, c | d, e | b", "b 1", "c 1", "d 1", "e 1"]);
    let resolution = resolve(&universe, &request(&["app"], &["b", "c"])).unwrap();
    let names: Vec<_> = resolution
        .packages
        .iter()
        .map(|r| r.package.name.as_str())
        .collect();
    assert_eq!(names, ["app", "d", "e"]);
    assert_eq!(
        resolution.skipped,
        [SkippedDependency {
            parent: "app".to_string(),
            relation: "b".to_string(),
            field: "Depends",
            reason: SkipReason::Excluded {
                packages: vec!["b".to_string()]
            },
        }]
    );
    assert!(matches!(
        resolve(&universe, &request(&["b"], &["b"])),
        Err(ResolveError::RequestedAndExcluded { .. })
    ));
}

#[test]
fn install_time_dependencies_are_skipped_unless_asked() {
    let specs = [
        "app 1;p=dpkg (>= 1.17);d=debconf (>= 0.5) | debconf-2.0, libc6",
        "dpkg 1.21;d=tar",
        "tar 1",
        "debconf 1",
        "libc6 2",
    ];
    let universe = universe(&specs);
    let mut wanted = request(&["app"], &[]);
    let resolution = resolve(&universe, &wanted).unwrap();
    assert!(resolution.get("dpkg").is_none() && resolution.get("tar").is_none());
    assert!(resolution.get("libc6").is_some());
    let skipped: Vec<_> = resolution
        .skipped
        .iter()
        .map(|s| (s.relation.as_str(), s.field))
        .collect();
    assert_eq!(
        skipped,
        [
            ("dpkg (>= 1.17)", "Pre-Depends"),
            ("debconf (>= 0.5) | debconf-2.0", "Depends")
        ]
    );
    assert!(
        resolution
            .skipped
            .iter()
            .all(|s| s.reason == SkipReason::InstallTimeOnly)
    );
    wanted.install_time_dependencies = true;
    let resolution = resolve(&universe, &wanted).unwrap();
    assert_eq!(resolution.packages.len(), 5);
    assert!(resolution.skipped.is_empty());
    assert_eq!(
        resolution.get("tar").unwrap().reason,
        Reason::Dependency {
            parent: "dpkg".to_string(),
            relation: "tar".to_string(),
            field: "Depends"
        }
    );
}

#[test]
fn multi_arch_qualifiers() {
    let allowed = ["app 1;d=perl:any", "perl 5;m=allowed"];
    assert_eq!(
        closure(&universe(&allowed), &request(&["app"], &[])),
        ["app 1", "perl 5"]
    );
    let foreign = ["app 1;d=perl:any", "perl 5;m=foreign"];
    assert_eq!(
        closure(&universe(&foreign), &request(&["app"], &[])),
        ["app 1", "perl 5"]
    );
    let error = resolve(
        &universe(&["app 1;d=perl:any", "perl 5"]),
        &request(&["app"], &[]),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot satisfy \"perl:any\" needed by app: available: perl 5 (multi-arch: no)"
    );
    let native = [
        "app 1;d=lib:native, tool:arm64, data:native",
        "lib 1",
        "tool 1",
        "data 1;a=all",
    ];
    assert_eq!(
        closure(&universe(&native), &request(&["app"], &[])).len(),
        4
    );
    let other = ["app 1;d=lib:amd64", "lib 1"];
    assert!(resolve(&universe(&other), &request(&["app"], &[])).is_err());
}

#[test]
fn pre_depends_cycles_terminate() {
    let universe = universe(&["a 1;p=b", "b 1;p=a;d=c", "c 1;d=a, c"]);
    let resolution = resolve(&universe, &request(&["a"], &[])).unwrap();
    assert_eq!(resolution.packages.len(), 3);
    assert_eq!(
        resolution.get("c").unwrap().reason,
        Reason::Dependency {
            parent: "b".to_string(),
            relation: "c".to_string(),
            field: "Depends",
        }
    );
}

#[test]
fn conflicts_steer_alternatives_or_fail() {
    let specs = [
        "x 1;c=y",
        "app 1;d=y | z",
        "y 1",
        "z 1",
        "w 1;b=x (<< 2)",
        "self 1;v=thing;c=thing",
    ];
    let universe = universe(&specs);
    assert_eq!(
        closure(&universe, &request(&["x", "app"], &[])),
        ["app 1", "x 1", "z 1"]
    );
    let error = resolve(&universe, &request(&["y", "x"], &[])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "x (x) has Conflicts \"y\", but y 1 is selected too"
    );
    assert!(matches!(
        resolve(&universe, &request(&["x", "w"], &[])),
        Err(ResolveError::Conflict {
            field: "Breaks",
            ..
        })
    ));
    assert_eq!(closure(&universe, &request(&["self"], &[])), ["self 1"]);
}

#[test]
fn resolution_is_deterministic_whatever_the_input_order() {
    let mut specs = vec![
        "app 1;d=v1, v2 | q, lib (>= 1)",
        "p1 1;v=v1;r=optional",
        "p2 1;v=v1;r=optional",
        "lib 1",
        "lib 2",
        "q 1",
        "v2real 1;v=v2",
    ];
    let first = resolve(&universe(&specs), &request(&["app"], &[])).unwrap();
    specs.reverse();
    let second = resolve(&universe(&specs), &request(&["app"], &[])).unwrap();
    let describe = |resolution: &Resolution| -> Vec<String> {
        resolution
            .packages
            .iter()
            .map(|r| format!("{} {:?}", r.package.describe(), r.reason))
            .collect()
    };
    assert_eq!(describe(&first), describe(&second));
    // `v2 | q`: the provider of the first alternative comes before the
    // real package of the second.
    assert_eq!(
        closure(&universe(&specs), &request(&["app"], &[])),
        ["app 1", "lib 2", "p1 1", "v2real 1"]
    );
}

#[test]
fn unknown_packages_suggest_close_names() {
    let universe = universe(&["cowsay 1", "cowsay-off 1", "fortune 1;v=fortune-mod"]);
    let error = resolve(&universe, &request(&["cowsey"], &[])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no package named \"cowsey\" in the index; did you mean cowsay?"
    );
    let error = resolve(&universe, &request(&["fortune-mud"], &[])).unwrap_err();
    assert!(
        error.to_string().ends_with("did you mean fortune-mod?"),
        "{error}"
    );
    let error = resolve(&universe, &request(&["zzz"], &[])).unwrap_err();
    assert_eq!(error.to_string(), "no package named \"zzz\" in the index");
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

/// Lists of the host's apt for one architecture, uncompressed or lz4.
fn host_lists() -> Option<(String, Vec<std::path::PathBuf>)> {
    let directory = fs_err::read_dir("/var/lib/apt/lists").ok()?;
    let mut lists: Vec<_> = directory
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    lists.sort();
    for architecture in ["arm64", "amd64"] {
        let marker = format!("binary-{architecture}_Packages");
        let chosen: Vec<_> = lists
            .iter()
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                name.ends_with(&marker) || name.ends_with(&format!("{marker}.lz4"))
            })
            .cloned()
            .collect();
        if !chosen.is_empty() {
            return Some((architecture.to_string(), chosen));
        }
    }
    None
}

#[test]
fn resolves_cowsay_from_host_lists() {
    use crate::debian::package::parse_packages_index;
    use std::io::BufReader;
    let Some((architecture, lists)) = host_lists() else {
        println!("note: no apt lists under /var/lib/apt/lists; skipping");
        return;
    };
    let started = std::time::Instant::now();
    let mut packages = Vec::new();
    for list in &lists {
        let origin = list.display().to_string();
        if origin.ends_with(".lz4") {
            let Ok(mut child) = std::process::Command::new("lz4cat")
                .arg(list)
                .stdout(std::process::Stdio::piped())
                .spawn()
            else {
                println!("note: lz4cat missing, skipping {origin}");
                continue;
            };
            let reader = BufReader::new(child.stdout.take().unwrap());
            packages.extend(parse_packages_index(reader, &origin, &architecture).unwrap());
            assert!(child.wait().unwrap().success());
        } else {
            let reader = BufReader::new(fs_err::File::open(list).unwrap());
            packages.extend(parse_packages_index(reader, &origin, &architecture).unwrap());
        }
    }
    if packages.is_empty() {
        println!("note: no package read from the host lists; skipping");
        return;
    }
    let universe = Universe::new(packages);
    println!(
        "{} packages ({architecture}) parsed in {:?}",
        universe.len(),
        started.elapsed()
    );
    assert!(universe.len() > 10_000);
    let mut wanted = request(&["cowsay"], &[]);
    let resolution = resolve(&universe, &wanted).unwrap();
    for name in ["cowsay", "perl", "perl-base", "libc6"] {
        assert!(resolution.get(name).is_some(), "{name} missing");
    }
    assert!(resolution.get("dpkg").is_none());
    assert!(
        resolution
            .skipped
            .iter()
            .any(|s| s.relation.starts_with("dpkg"))
    );
    println!(
        "cowsay closure: {} packages, {} bytes",
        resolution.packages.len(),
        resolution.download_size()
    );
    wanted.install_time_dependencies = true;
    let with_dpkg = resolve(&universe, &wanted).unwrap();
    assert!(with_dpkg.get("dpkg").is_some());
    assert!(with_dpkg.packages.len() > resolution.packages.len());
    println!(
        "with install-time dependencies: {} packages",
        with_dpkg.packages.len()
    );
}

#[test]
fn without_dependencies_selects_only_the_requested_packages() {
    let universe = universe(&["src 1;d=perl, make", "perl 1;d=libc", "make 1", "libc 1"]);
    let mut only = request(&["src", "make"], &[]);
    only.without_dependencies = true;
    assert_eq!(closure(&universe, &only), ["make 1", "src 1"]);
    assert_eq!(
        closure(&universe, &request(&["src"], &[])),
        ["libc 1", "make 1", "perl 1", "src 1"]
    );
    // An unknown name is still an error.
    let mut missing = request(&["nothing"], &[]);
    missing.without_dependencies = true;
    assert!(resolve(&universe, &missing).is_err());
}
