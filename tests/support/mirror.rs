//! The Debian mirror the host's own apt uses, for the tests that read the
//! real archive (network): never a host name written into a test.

/// The host apt's Debian mirror (the `URIs:` of its deb822 sources, else
/// the first `deb` line of sources.list).
pub fn host_mirror() -> String {
    let deb822 = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "sources")
        })
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|line| line.strip_prefix("URIs:"))
                .map(|value| value.split_whitespace().next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        })
        .find(|uri| !uri.is_empty() && !uri.contains("security"));
    deb822
        .or_else(|| {
            std::fs::read_to_string("/etc/apt/sources.list")
                .ok()?
                .lines()
                .filter_map(|line| line.strip_prefix("deb "))
                .filter_map(|rest| rest.split_whitespace().find(|word| word.contains("://")))
                .map(str::to_owned)
                .next()
        })
        .expect("the host's apt configuration names a Debian mirror")
}
