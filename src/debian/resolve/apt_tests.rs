//! Regression tests for the differences from apt's own solver (issue 7),
//! each universe modelled on the real case named in the test, and the
//! records of pure-virtual choices.

use super::tests::{closure, request, universe};
use super::*;

/// devscripts: `libscalar-list-utils-perl (>= …)` is met by perl-base,
/// which an earlier dependency (dpkg-dev → perl) brings in depth-first, so
/// the real package must not be added.
#[test]
fn breadth_first_commitment_added_a_package_a_provider_selected_later_covers() {
    let universe = universe(&[
        "devscripts 2.23;d=dpkg-dev, libscalar-list-utils-perl (>= 1:1.40)",
        "dpkg-dev 1.21;d=perl",
        "perl 5.36;d=perl-base (= 5.36)",
        "perl-base 5.36;v=libscalar-list-utils-perl (= 1:1.63)",
        "libscalar-list-utils-perl 1:1.63",
    ]);
    assert_eq!(
        closure(&universe, &request(&["devscripts"], &[])),
        [
            "devscripts 2.23",
            "dpkg-dev 1.21",
            "perl 5.36",
            "perl-base 5.36"
        ]
    );
}

/// courier-base, the other way round: apt reaches `lsb-base (>= …)` (through
/// courier-authlib) before sysvinit-utils, which provides it, is selected, so
/// it takes the real lsb-base.
#[test]
fn breadth_first_commitment_took_a_provider_selected_earlier_in_its_order() {
    let universe = universe(&[
        "courier-base 1.2;d=courier-authlib, sysvinit-utils",
        "courier-authlib 0.72;d=lsb-base (>= 3.0)",
        "sysvinit-utils 3.06;v=lsb-base (= 11.6)",
        "lsb-base 11.6",
    ]);
    assert_eq!(
        closure(&universe, &request(&["courier-base"], &[])),
        [
            "courier-authlib 0.72",
            "courier-base 1.2",
            "lsb-base 11.6",
            "sysvinit-utils 3.06"
        ]
    );
}

/// `default-mta | exim4 | mail-transport-agent` and `libcurl4-dev |
/// libcurl4-gnutls-dev`: the providers of the first alternative come before
/// a real package of a later one.
#[test]
fn alternatives_out_of_order_took_a_later_real_package_before_providers() {
    let universe = universe(&[
        "mailer 1;d=default-mta | exim4 | mail-transport-agent",
        "exim4 4.96;d=exim4-daemon-light | exim4-daemon-heavy, exim4-config",
        "exim4-daemon-light 4.96;v=default-mta, mail-transport-agent;d=exim4-base",
        "exim4-base 4.96",
        "exim4-config 4.96",
        "curl-user 1;d=libcurl4-dev | libcurl4-gnutls-dev",
        "libcurl4-openssl-dev 7.88;v=libcurl4-dev, libcurl-dev",
        "libcurl4-gnutls-dev 7.88;v=libcurl-dev",
    ]);
    assert_eq!(
        closure(&universe, &request(&["mailer"], &[])),
        ["exim4-base 4.96", "exim4-daemon-light 4.96", "mailer 1"]
    );
    assert_eq!(
        closure(&universe, &request(&["curl-user"], &[])),
        ["curl-user 1", "libcurl4-openssl-dev 7.88"]
    );
}

/// qutebrowser on s390x: qutebrowser-qtwebengine cannot be installed (its
/// web engine is not built there), so apt takes qutebrowser-qtwebkit, and
/// what the failed attempt had selected (libjs-pdf) is dropped again.
#[test]
fn no_fallback_when_the_first_alternative_cannot_be_installed() {
    let specs = [
        "qutebrowser 2.5;a=all;d=qutebrowser-qtwebengine | qutebrowser-qtwebkit, python3-jinja2",
        "qutebrowser-qtwebengine 2.5;a=all;d=libjs-pdf, python3-pyqt5.qtwebengine",
        "libjs-pdf 2.14;a=all",
        "python3-pyqt5.qtwebengine 5.15;d=libqt5webenginecore5",
        "qutebrowser-qtwebkit 2.5;a=all;d=python3-pyqt5.qtwebkit",
        "python3-pyqt5.qtwebkit 5.212",
        "python3-jinja2 3.1;a=all",
    ];
    assert_eq!(
        closure(&universe(&specs), &request(&["qutebrowser"], &[])),
        [
            "python3-jinja2 3.1",
            "python3-pyqt5.qtwebkit 5.212",
            "qutebrowser 2.5",
            "qutebrowser-qtwebkit 2.5"
        ]
    );
    // With neither installable, the error is the first alternative's
    // deepest cause, with its chain.
    let without_webkit: Vec<&str> = specs
        .iter()
        .copied()
        .filter(|spec| !spec.starts_with("python3-pyqt5.qtwebkit"))
        .collect();
    let error = resolve(&universe(&without_webkit), &request(&["qutebrowser"], &[])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot satisfy \"libqt5webenginecore5\" needed by qutebrowser → \
         qutebrowser-qtwebengine → python3-pyqt5.qtwebengine: available: none"
    );
}

/// php8.2-json: `phpapi-20220829` is pure virtual; any provider is valid,
/// and the one that adds the fewest packages is taken (php8.2-cli, not
/// libapache2-mod-php8.2 with all of apache2).
#[test]
fn pure_virtual_took_a_heavy_provider() {
    let universe = universe(&[
        "php8.2-json 8.2;a=all;d=phpapi-20220829, php8.2-common",
        "libapache2-mod-php8.2 8.2;v=phpapi-20220829;d=apache2, php8.2-common;r=optional",
        "apache2 2.4;d=apache2-bin, apache2-data;r=optional",
        "apache2-bin 2.4;r=optional",
        "apache2-data 2.4;a=all;r=optional",
        "php8.2-cli 8.2;v=phpapi-20220829;d=php8.2-common, libedit2;r=optional",
        "php8.2-fpm 8.2;v=phpapi-20220829;d=php8.2-common, libedit2, systemd;r=optional",
        "systemd 252;r=important",
        "libedit2 3.1;r=optional",
        "php8.2-common 8.2;r=optional",
    ]);
    assert_eq!(
        closure(&universe, &request(&["php8.2-json"], &[])),
        [
            "libedit2 3.1",
            "php8.2-cli 8.2",
            "php8.2-common 8.2",
            "php8.2-json 8.2"
        ]
    );
}

#[test]
fn pure_virtual_choice_is_recorded_with_each_providers_weight() {
    let universe = universe(&[
        "php-json 2;a=all;d=php8.2-json",
        "php8.2-cli 8.2;v=php8.2-json;d=libedit2",
        "php8.2-fpm 8.2;v=php8.2-json;d=libedit2, systemd",
        "php8.2-cgi 8.2;v=php8.2-json;d=missing",
        "libedit2 3.1",
        "systemd 252",
    ]);
    let resolution = resolve(&universe, &request(&["php-json"], &[])).unwrap();
    let option = |name: &str, added| ProviderOption {
        name: name.to_string(),
        version: "8.2".to_string(),
        added,
    };
    assert_eq!(
        resolution.choices,
        [ProviderChoice {
            reason: Reason::Dependency {
                parent: "php-json".to_string(),
                relation: "php8.2-json".to_string(),
                field: "Depends",
            },
            virtual_name: "php8.2-json".to_string(),
            chosen: "php8.2-cli".to_string(),
            providers: vec![
                option("php8.2-cli", Some(2)),
                option("php8.2-fpm", Some(3)),
                option("php8.2-cgi", None),
            ],
        }]
    );
    // A request for the pure-virtual name itself is met the same way.
    let resolution = resolve(&universe, &request(&["php8.2-json"], &[])).unwrap();
    assert_eq!(resolution.choices[0].chosen, "php8.2-cli");
    assert_eq!(resolution.choices[0].reason, Reason::Requested);
    assert!(resolution.get("php8.2-cli").is_some() && resolution.get("systemd").is_none());
    // A name with one provider, or one already provided, is no choice.
    let resolution = resolve(&universe, &request(&["php8.2-fpm", "php-json"], &[])).unwrap();
    assert!(resolution.choices.is_empty());
    assert!(resolution.get("php8.2-cli").is_none());
}

#[test]
fn pure_virtual_ties_go_by_essential_then_priority_then_name() {
    let universe = universe(&[
        "app 1;d=awk",
        "original-awk 1;v=awk;r=optional",
        "gawk 1;v=awk;r=optional",
        "mawk 1;v=awk;r=required",
        "busybox 1;v=awk;r=optional;d=libc",
        "libc 1",
    ]);
    assert_eq!(
        closure(&universe, &request(&["app"], &[])),
        ["app 1", "mawk 1"]
    );
    assert_eq!(
        closure(&universe, &request(&["app"], &["mawk"])),
        ["app 1", "gawk 1"]
    );
}

/// libreoffice: libreoffice-base-core takes `libreoffice-core-nogui | …`
/// first, then libreoffice-base needs libreoffice-core, whose `Conflicts`
/// name nogui. apt unmarks the earlier, unprotected package and installs
/// the later one; what only the displaced one needed is dropped.
#[test]
fn a_later_package_displaces_an_unprotected_one_it_conflicts_with() {
    let universe = universe(&[
        "libreoffice 7;d=libreoffice-base-core, libreoffice-base",
        "libreoffice-base-core 7;d=libreoffice-core-nogui (= 7) | libreoffice-core (= 7)",
        "libreoffice-core-nogui 7;d=fontconfig, libnss3;c=libreoffice-core",
        "libreoffice-core 7;d=fontconfig, libcups2;c=libreoffice-core-nogui",
        "libreoffice-base 7;d=libreoffice-core (= 7)",
        "fontconfig 2",
        "libcups2 2",
        "libnss3 3",
    ]);
    let resolution = resolve(&universe, &request(&["libreoffice"], &[])).unwrap();
    let names: Vec<&str> = resolution
        .packages
        .iter()
        .map(|resolved| resolved.package.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "fontconfig",
            "libcups2",
            "libreoffice",
            "libreoffice-base",
            "libreoffice-base-core",
            "libreoffice-core"
        ]
    );
    // fontconfig was selected for the displaced package; its reason now
    // names one that stays.
    assert_eq!(
        resolution.get("fontconfig").unwrap().reason,
        Reason::Dependency {
            parent: "libreoffice-core".to_string(),
            relation: "fontconfig".to_string(),
            field: "Depends",
        }
    );
    // A requested package is protected: what conflicts with it is passed
    // over.
    let error = resolve(
        &universe,
        &request(&["libreoffice-core-nogui", "libreoffice-base"], &[]),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot satisfy \"libreoffice-core (= 7)\" needed by libreoffice-base: available: \
         libreoffice-core 7 (conflicts with a selected package)"
    );
    // So is the only package that can meet a relation of a protected one
    // (apt spreads protection down such relations).
    let universe = self::universe(&[
        "app 1;d=lib, tool",
        "lib 1",
        "tool 1;d=newlib | oldlib",
        "newlib 1;c=lib",
        "oldlib 1",
    ]);
    assert_eq!(
        closure(&universe, &request(&["app"], &[])),
        ["app 1", "lib 1", "oldlib 1", "tool 1"]
    );
}
