//! `xbuild targets`: the platforms xbuild knows.

use super::TargetsArgs;
use xbuild::Error;
use xbuild::platform::Platforms;

pub fn list(args: TargetsArgs) -> Result<(), Error> {
    let platforms = Platforms::from_environment()?;
    let host = platforms.host().ok().map(|host| host.name.clone());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(platforms.all()).expect("platforms serialise")
        );
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<16} {:<28} aliases",
        "name", "debian", "oci", "rust"
    );
    for platform in platforms.all() {
        let marker = if host.as_deref() == Some(platform.name.as_str()) {
            " (host)"
        } else {
            ""
        };
        println!(
            "{:<20} {:<10} {:<16} {:<28} {}{}",
            platform.name,
            platform.debian_arch,
            platform.oci.to_string(),
            platform.rust_triple(),
            platform.aliases.join(", "),
            marker
        );
    }
    Ok(())
}
