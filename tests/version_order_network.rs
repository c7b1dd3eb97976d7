//! Checks `Version`'s ordering against dpkg itself on thousands of real
//! version strings: adjacent versions of one package, binary versus source
//! versions, neighbours in sorted order, deterministic pseudo-random pairs,
//! pairs with epochs and `~`, and small mutations of real versions.
//!
//! The versions come from the host's uncompressed apt lists
//! (`/var/lib/apt/lists/*_Packages`) or, when there are none, from
//! `dists/bookworm/main/binary-arm64/Packages.xz` on the mirror named by the
//! `URIs:` field of `/etc/apt/sources.list.d/debian.sources` (network).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use xbuild::debian::control::ParagraphReader;
use xbuild::debian::version::Version;

/// One package record: name, version, and the source version if the
/// `Source` field carries one.
struct Record {
    name: String,
    version: String,
    source_version: Option<String>,
}

fn read_records(reader: impl BufRead, origin: &str, records: &mut Vec<Record>) {
    for item in ParagraphReader::new(reader, origin) {
        let (paragraph, _) = item.unwrap_or_else(|error| panic!("{error}"));
        let (Some(name), Some(version)) = (paragraph.get("Package"), paragraph.get("Version"))
        else {
            continue;
        };
        let source_version = paragraph
            .get("Source")
            .and_then(|source| source.split_once('('))
            .map(|(_, version)| version.trim_end_matches(')').trim().to_string());
        records.push(Record {
            name: name.to_string(),
            version: version.to_string(),
            source_version,
        });
    }
}

fn host_records() -> Vec<Record> {
    let mut records = Vec::new();
    let Ok(directory) = fs_err::read_dir("/var/lib/apt/lists") else {
        return records;
    };
    let mut lists: Vec<_> = directory
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with("_Packages"))
        .collect();
    lists.sort();
    for list in lists {
        let file = fs_err::File::open(&list).unwrap();
        read_records(
            BufReader::new(file),
            &list.display().to_string(),
            &mut records,
        );
    }
    records
}

/// The first mirror URI of the host's deb822 apt sources for `bookworm`.
fn mirror_uri() -> Option<String> {
    let path = "/etc/apt/sources.list.d/debian.sources";
    let file = fs_err::File::open(path).ok()?;
    let mut first = None;
    for item in ParagraphReader::new(BufReader::new(file), path) {
        let (paragraph, _) = item.unwrap_or_else(|error| panic!("{error}"));
        let Some(uri) = paragraph
            .get("URIs")
            .and_then(|uris| uris.split_whitespace().next())
        else {
            continue;
        };
        let suites = paragraph.get("Suites").unwrap_or("");
        if suites.split_whitespace().any(|suite| suite == "bookworm") {
            return Some(uri.to_string());
        }
        first.get_or_insert_with(|| uri.to_string());
    }
    first
}

fn network_records(uri: &str) -> Vec<Record> {
    let url = format!(
        "{}/dists/bookworm/main/binary-arm64/Packages.xz",
        uri.trim_end_matches('/')
    );
    let response = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .and_then(|response| response.error_for_status())
        .unwrap_or_else(|error| panic!("cannot fetch {url}: {error}"));
    let mut records = Vec::new();
    let decoder = xz2::read::XzDecoder::new(response);
    read_records(
        BufReader::with_capacity(1 << 16, decoder),
        &url,
        &mut records,
    );
    records
}

/// A small deterministic generator (64-bit LCG), so the chosen pairs are
/// the same on every run for the same input.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound
    }
}

fn random_pairs(
    pool: &[&str],
    count: usize,
    generator: &mut Lcg,
    pairs: &mut BTreeSet<(String, String)>,
) {
    if pool.len() < 2 {
        return;
    }
    for _ in 0..count {
        let left = pool[generator.below(pool.len())];
        let right = pool[generator.below(pool.len())];
        pairs.insert((left.to_string(), right.to_string()));
    }
}

fn build_pairs(records: &[Record]) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    // Adjacent versions of the same package (several lists, or several
    // versions in one list).
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for record in records {
        by_name
            .entry(&record.name)
            .or_default()
            .insert(&record.version);
    }
    for versions in by_name.values() {
        let mut sorted: Vec<Version> = versions.iter().map(|text| parse(text)).collect();
        sorted.sort();
        for window in sorted.windows(2) {
            pairs.insert((window[0].to_string(), window[1].to_string()));
        }
    }
    // Binary versions against their source versions (`+b1` binNMUs and
    // binaries versioned apart from their source).
    let source_pairs: BTreeSet<(String, String)> = records
        .iter()
        .filter_map(|record| {
            let source = record.source_version.as_ref()?;
            (source != &record.version).then(|| (record.version.clone(), source.clone()))
        })
        .collect();
    pairs.extend(source_pairs.into_iter().take(1000));

    let distinct: Vec<&str> = records
        .iter()
        .map(|record| record.version.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Neighbours in our own sorted order: the closest, most telling pairs.
    let mut sorted: Vec<(Version, &str)> =
        distinct.iter().map(|text| (parse(text), *text)).collect();
    sorted.sort_by(|left, right| left.0.cmp(&right.0).then(left.1.cmp(right.1)));
    let step = (sorted.len() / 1500).max(1);
    for window in sorted.windows(2).step_by(step) {
        pairs.insert((window[0].1.to_string(), window[1].1.to_string()));
    }

    let mut generator = Lcg(0x5eed);
    random_pairs(&distinct, 1500, &mut generator, &mut pairs);
    let with_epoch: Vec<&str> = distinct
        .iter()
        .copied()
        .filter(|text| text.contains(':'))
        .collect();
    let with_tilde: Vec<&str> = distinct
        .iter()
        .copied()
        .filter(|text| text.contains('~'))
        .collect();
    assert!(
        !with_epoch.is_empty() && !with_tilde.is_empty(),
        "no epoch or tilde versions"
    );
    random_pairs(&with_epoch, 300, &mut generator, &mut pairs);
    random_pairs(&with_tilde, 300, &mut generator, &mut pairs);
    let mixed: Vec<&str> = with_epoch.iter().chain(&with_tilde).copied().collect();
    random_pairs(&mixed, 300, &mut generator, &mut pairs);

    // Mutations of real versions around the tricky rules.
    for _ in 0..300 {
        let text = distinct[generator.below(distinct.len())];
        let version = parse(text);
        let mut variants = vec![
            format!("{text}~"),
            format!("{text}~~"),
            format!("{text}+b1"),
            format!("{text}a"),
            format!("{text}.0"),
        ];
        if version.epoch == 0 {
            variants.push(format!("1:{text}"));
            variants.push(format!("0:{text}"));
        }
        if version.revision.is_empty() {
            variants.push(format!("{text}-0"));
            variants.push(format!("{text}-~"));
        } else {
            // The same version without its revision.
            let epoch = match version.epoch {
                0 => String::new(),
                epoch => format!("{epoch}:"),
            };
            variants.push(format!("{epoch}{}", version.upstream));
        }
        for variant in variants {
            pairs.insert((text.to_string(), variant));
        }
    }
    pairs
}

fn parse(text: &str) -> Version {
    text.parse()
        .unwrap_or_else(|error| panic!("real version {text:?} does not parse: {error}"))
}

fn dpkg_says(left: &str, operator: &str, right: &str) -> Result<bool, String> {
    let status = Command::new("dpkg")
        .args(["--compare-versions", left, operator, right])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|error| format!("cannot run dpkg: {error}"))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!(
            "dpkg --compare-versions {left} {operator} {right}: {status}"
        )),
    }
}

/// Checks one pair; returns a description of any disagreement.
fn check(left: &str, right: &str) -> Option<String> {
    let ours = parse(left).cmp(&parse(right));
    let operator = match ours {
        Ordering::Less => "lt",
        Ordering::Equal => "eq",
        Ordering::Greater => "gt",
    };
    match dpkg_says(left, operator, right) {
        Ok(true) => None,
        Ok(false) => {
            let actual = ["lt", "eq", "gt"]
                .into_iter()
                .find(|operator| dpkg_says(left, operator, right) == Ok(true))
                .unwrap_or("?");
            Some(format!("{left} vs {right}: ours {operator}, dpkg {actual}"))
        }
        Err(error) => Some(error),
    }
}

#[test]
fn version_order_matches_dpkg_network() {
    if Command::new("dpkg").arg("--version").output().is_err() {
        println!("note: dpkg is not installed; skipping");
        return;
    }
    let started = std::time::Instant::now();
    let mut records = host_records();
    let source = if records.is_empty() {
        let Some(uri) = mirror_uri() else {
            println!("note: no uncompressed apt lists and no debian.sources; skipping");
            return;
        };
        records = network_records(&uri);
        "the mirror (network)"
    } else {
        "the host's apt lists"
    };
    assert!(records.len() > 10_000, "only {} records", records.len());
    let pairs: Vec<(String, String)> = build_pairs(&records).into_iter().collect();
    println!(
        "{} records from {source} read in {:?}; checking {} pairs",
        records.len(),
        started.elapsed(),
        pairs.len()
    );
    assert!(pairs.len() >= 3000, "only {} pairs", pairs.len());

    let threads = std::thread::available_parallelism().map_or(2, |count| count.get()) * 2;
    let chunk = pairs.len().div_ceil(threads);
    let mismatches: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .chunks(chunk)
            .map(|pairs| {
                scope.spawn(move || {
                    pairs
                        .iter()
                        .filter_map(|(left, right)| check(left, right))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    });
    println!("checked in {:?}", started.elapsed());
    assert!(
        mismatches.is_empty(),
        "{} disagreements with dpkg, first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
