use super::*;

fn relations(text: &str, arch: &str) -> Vec<String> {
    parse_relations(text, arch)
        .unwrap()
        .iter()
        .map(|alternatives| display_alternatives(alternatives))
        .collect()
}

#[test]
fn parses_versions_qualifiers_and_alternatives() {
    let parsed = parse_relations(
        "libc6 (>= 2.34), perl:any, debconf (>= 0.5) | debconf-2.0,foo(<<1:2-3)",
        "arm64",
    )
    .unwrap();
    assert_eq!(parsed.len(), 4);
    assert_eq!(parsed[0][0].name, "libc6");
    let (operator, version) = parsed[0][0].constraint.as_ref().unwrap();
    assert_eq!(
        (*operator, version.to_string().as_str()),
        (Operator::LaterOrEqual, "2.34")
    );
    assert_eq!(parsed[1][0].arch_qualifier.as_deref(), Some("any"));
    assert_eq!(parsed[2].len(), 2);
    assert_eq!(parsed[3][0].to_string(), "foo (<< 1:2-3)");
}

#[test]
fn continuation_lines_and_empty_entries_are_tolerated() {
    assert_eq!(relations("a,\n b ,, c\n", "amd64"), ["a", "b", "c"]);
}

#[test]
fn obsolete_operators_mean_or_equal() {
    let parsed = parse_relations("a (< 2), b (> 1)", "amd64").unwrap();
    assert_eq!(
        parsed[0][0].constraint.as_ref().unwrap().0,
        Operator::EarlierOrEqual
    );
    assert_eq!(
        parsed[1][0].constraint.as_ref().unwrap().0,
        Operator::LaterOrEqual
    );
    assert_eq!(relations("a (< 2)", "amd64"), ["a (<= 2)"]);
}

#[test]
fn architecture_restrictions_drop_alternatives() {
    let text = "a [amd64], b [!amd64 !i386], c [linux-any] | d [any-arm], e [armhf] | f";
    assert_eq!(relations(text, "amd64"), ["a", "c", "f"]);
    assert_eq!(relations(text, "arm64"), ["b", "c", "f"]);
    assert_eq!(relations(text, "armhf"), ["b", "c | d", "e | f"]);
    assert!(matches!(
        parse_relations("a [amd64 !arm64]", "arm64"),
        Err(RelationError::MixedArchitectures { .. })
    ));
}

#[test]
fn build_profiles_hold_only_when_negated() {
    let text = "a <!nocheck>, b <stage1>, c <stage1> <!cross>, d [arm64] <!nodoc>";
    assert_eq!(relations(text, "arm64"), ["a", "c", "d"]);
    assert_eq!(relations(text, "amd64"), ["a", "c"]);
}

#[test]
fn syntax_errors_are_reported() {
    let cases = [
        ("a (>= 1", "Unclosed"),
        ("a (~ 1)", "InvalidOperator"),
        ("a (>= )", "InvalidVersion"),
        ("(>= 1)", "InvalidName"),
        ("a b", "Unexpected"),
        ("a:", "InvalidQualifier"),
        ("a [amd64", "Unclosed"),
    ];
    for (text, expected) in cases {
        let error = parse_relations(text, "amd64").unwrap_err();
        assert!(
            format!("{error:?}").starts_with(expected),
            "{text}: {error:?}"
        );
    }
}

#[test]
fn provides_and_conflicts_reject_what_they_must() {
    assert!(matches!(
        parse_provides("a (>= 1)", "amd64"),
        Err(RelationError::ProvidesOperator { .. })
    ));
    assert!(matches!(
        parse_relation_list("a | b", "amd64"),
        Err(RelationError::AlternativesNotAllowed { .. })
    ));
    let provides = parse_provides("mail-transport-agent, libfoo (= 1.0)", "amd64").unwrap();
    assert_eq!(provides[1].to_string(), "libfoo (= 1.0)");
}

#[test]
fn satisfied_by_uses_dpkg_ordering() {
    let relation = &parse_relations("a (>= 1:1.0~rc1)", "amd64").unwrap()[0][0];
    let version = |text: &str| text.parse::<Version>().unwrap();
    assert!(relation.satisfied_by(&version("1:1.0")));
    assert!(relation.satisfied_by(&version("1:1.0~rc1")));
    assert!(!relation.satisfied_by(&version("1:1.0~beta")));
    assert!(!relation.satisfied_by(&version("9.0")));
    assert!(Relation::new("a").satisfied_by(&version("0")));
    let strict = &parse_relations("a (<< 2)", "amd64").unwrap()[0][0];
    assert!(strict.satisfied_by(&version("2~")));
    assert!(!strict.satisfied_by(&version("2")));
    assert!(!strict.satisfied_by(&version("2.0")));
}

const INDEX: &str = "\
Package: perl-base
Source: perl (5.36.0-7)
Version: 5.36.0-7+deb12u1
Installed-Size: 7645
Architecture: arm64
Essential: yes
Multi-Arch: foreign
Pre-Depends: libc6 (>= 2.35), libcrypt1 (>= 1:4.1.0), dpkg (>= 1.17.17)
Breaks: amanda-common (<< 1:3.3.9-2), libfile-spec-perl (<< 3.8000)
Conflicts: defoma (<< 0.11.12), doc-base (<< 0.10.3)
Provides: libfile-path-perl (= 2.18), perlapi-5.36.0
Description: minimal Perl system
 Perl is a scripting language.
Priority: required
Section: perl
Filename: pool/main/p/perl/perl-base_5.36.0-7+deb12u1_arm64.deb
Size: 1470748
SHA256: 2b1c6d6b3f9e0f6ec1a2e2fce5f3d3bc1e22f8b5b7e14dbd25e4b6e1f8d2a0c3

Package: other-arch
Version: 1
Architecture: amd64

Package: cowsay
Version: 3.03+dfsg2-8
Architecture: all
Depends: libtext-charwidth-perl, perl:any
Filename: pool/main/c/cowsay/cowsay_3.03+dfsg2-8_all.deb
Size: 21372
SHA256: 5b16f90ff97871aa0f442087abc1878940d00e310f74190ba854a097545204bf
";

#[test]
fn parses_an_index_keeping_target_and_all() {
    let packages = parse_packages_index(INDEX.as_bytes(), "test-index", "arm64").unwrap();
    assert_eq!(packages.len(), 2);
    let perl = &packages[0];
    assert_eq!(perl.name, "perl-base");
    assert_eq!(perl.version.to_string(), "5.36.0-7+deb12u1");
    assert_eq!(perl.source_name(), "perl");
    assert!(perl.essential);
    assert_eq!(perl.multi_arch, MultiArch::Foreign);
    assert_eq!(perl.pre_depends.len(), 3);
    assert_eq!(perl.provides.len(), 2);
    assert_eq!(perl.breaks.len(), 2);
    assert_eq!(perl.conflicts[0].to_string(), "defoma (<< 0.11.12)");
    assert_eq!(perl.priority.as_deref(), Some("required"));
    assert_eq!(perl.installed_size_kib, Some(7645));
    assert_eq!(perl.size, 1470748);
    let cowsay = &packages[1];
    assert_eq!(cowsay.source_name(), "cowsay");
    assert_eq!(cowsay.architecture, "all");
    assert_eq!(cowsay.multi_arch, MultiArch::No);
    assert_eq!(
        cowsay.sha256.to_string(),
        "5b16f90ff97871aa0f442087abc1878940d00e310f74190ba854a097545204bf"
    );
    assert_eq!(cowsay.installed_size_kib, None);
}

#[test]
fn missing_required_fields_name_origin_line_and_package() {
    for field in ["Filename", "Size", "SHA256"] {
        let text: String = INDEX
            .split("\n\n")
            .nth(2)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with(field))
            .map(|line| format!("{line}\n"))
            .collect();
        let text = format!("\n# header\n\n{text}");
        let error = parse_packages_index(text.as_bytes(), "lists/x_Packages", "arm64").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("lists/x_Packages:4: package cowsay has no {field} field")
        );
    }
}

#[test]
fn invalid_fields_are_errors() {
    let broken = INDEX.replace("Size: 21372", "Size: lots");
    let error = parse_packages_index(broken.as_bytes(), "idx", "arm64").unwrap_err();
    assert_eq!(
        error.to_string(),
        "idx:29: package cowsay has an invalid Size field: \"lots\""
    );
    let broken = INDEX.replace("perl:any", "perl (>> )");
    let error = parse_packages_index(broken.as_bytes(), "idx", "arm64").unwrap_err();
    assert!(matches!(
        error,
        PackageError::InvalidRelation {
            field: "Depends",
            line: 27,
            ..
        }
    ));
    let broken = INDEX.replace("Multi-Arch: foreign", "Multi-Arch: sometimes");
    assert!(parse_packages_index(broken.as_bytes(), "idx", "arm64").is_err());
}
