use super::*;

fn builtin() -> Platforms {
    Platforms::builtin().expect("built-in platforms load")
}

const EXPECTED_BUILTIN: &[&str] = &[
    "aarch64-linux",
    "aarch64-linux-musl",
    "armv7-linux",
    "i686-linux",
    "ppc64le-linux",
    "riscv64-linux",
    "s390x-linux",
    "x86_64-linux",
    "x86_64-linux-musl",
];

#[test]
fn every_builtin_target_file_loads_sorted_by_name() {
    assert_eq!(BUILTIN_TARGETS.len(), EXPECTED_BUILTIN.len());
    let platforms = builtin();
    let names: Vec<&str> = platforms.all().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, EXPECTED_BUILTIN);
}

#[test]
fn every_form_of_every_builtin_name_resolves_to_its_platform() {
    let platforms = builtin();
    for platform in platforms.all() {
        let mut forms = vec![platform.name.clone(), platform.name.to_uppercase()];
        forms.extend(platform.aliases.iter().cloned());
        forms.extend(platform.aliases.iter().map(|alias| alias.to_uppercase()));
        forms.extend(platform.rust_triples.iter().cloned());
        forms.push(platform.gnu_triple.clone());
        for form in forms {
            let resolved = platforms
                .parse(&form)
                .unwrap_or_else(|error| panic!("`{form}`: {error}"));
            assert_eq!(resolved.name, platform.name, "`{form}`");
        }
    }
}

#[test]
fn glibc_platforms_answer_to_their_oci_spelling() {
    let platforms = builtin();
    for platform in platforms.all().iter().filter(|p| p.libc == Libc::Gnu) {
        let oci = platform.oci.to_string();
        assert_eq!(platforms.parse(&oci).unwrap().name, platform.name, "{oci}");
    }
}

#[test]
fn triples_and_aliases_from_the_brief() {
    let platforms = builtin();
    let cases = [
        ("arm64", "aarch64-linux"),
        ("linux/arm64", "aarch64-linux"),
        ("linux/arm64/v8", "aarch64-linux"),
        ("aarch64-unknown-linux-gnu", "aarch64-linux"),
        ("aarch64-unknown-linux", "aarch64-linux"),
        ("aarch64-unknown-linux-musl", "aarch64-linux-musl"),
        ("armv7-unknown-linux-gnueabihf", "armv7-linux"),
        ("linux/arm/v7", "armv7-linux"),
        ("powerpc64le-unknown-linux-gnu", "ppc64le-linux"),
        ("ppc64el", "ppc64le-linux"),
        ("i686-unknown-linux-gnu", "i686-linux"),
        ("linux/386", "i686-linux"),
        ("riscv64gc-unknown-linux-gnu", "riscv64-linux"),
        ("riscv64-unknown-linux-gnu", "riscv64-linux"),
        ("x86_64-unknown-linux-musl", "x86_64-linux-musl"),
        ("x86_64-pc-linux-gnu", "x86_64-linux"),
        (" AMD64 ", "x86_64-linux"),
        ("s390x-unknown-linux-gnu", "s390x-linux"),
    ];
    for (input, expected) in cases {
        let resolved = platforms
            .parse(input)
            .unwrap_or_else(|error| panic!("`{input}`: {error}"));
        assert_eq!(resolved.name, expected, "`{input}`");
    }
}

#[test]
fn wrong_abi_or_os_is_not_a_match() {
    let platforms = builtin();
    for input in [
        "armv7-unknown-linux-gnueabi",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
        "powerpc64-unknown-linux-gnu",
        "mips64el-unknown-linux-gnuabi64",
    ] {
        assert!(platforms.parse(input).is_err(), "`{input}` resolved");
    }
}

#[test]
fn unknown_name_lists_known_names_and_suggests_the_closest() {
    let platforms = builtin();
    let error = platforms.parse("aarch64-linx").unwrap_err();
    let PlatformError::Unknown {
        name,
        known,
        suggestion,
    } = &error
    else {
        panic!("unexpected error {error}");
    };
    assert_eq!(name, "aarch64-linx");
    assert_eq!(known, EXPECTED_BUILTIN);
    assert_eq!(suggestion.as_deref(), Some("aarch64-linux"));
    let message = error.to_string();
    assert!(message.starts_with("unknown platform `aarch64-linx` (did you mean `aarch64-linux`?); known platforms: aarch64-linux, aarch64-linux-musl, armv7-linux,"), "{message}");
    assert!(
        message.ends_with("x86_64-linux, x86_64-linux-musl"),
        "{message}"
    );

    let far = platforms.parse("sparc").unwrap_err();
    assert!(
        matches!(
            far,
            PlatformError::Unknown {
                suggestion: None,
                ..
            }
        ),
        "{far}"
    );
    // An alias typo suggests the platform, not the alias.
    let alias = platforms.parse("risc64").unwrap_err();
    assert!(
        matches!(&alias, PlatformError::Unknown { suggestion: Some(s), .. } if s == "riscv64-linux"),
        "{alias}"
    );
}

#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn host_is_x86_64_linux_here() {
    let platforms = builtin();
    assert_eq!(platforms.host().unwrap().name, "x86_64-linux");
    let target = platforms.parse("arm64").unwrap();
    let pair = platforms.pair_for(target).unwrap();
    assert_eq!(pair.to_string(), "x86_64-linux → aarch64-linux");
    assert!(!pair.is_native());
}

#[test]
fn riscv64_needs_trixie() {
    let platforms = builtin();
    let riscv = platforms.parse("riscv64").unwrap();
    assert!(!riscv.is_available_in_suite("bookworm"));
    assert!(!riscv.is_available_in_suite("bookworm-updates"));
    assert!(riscv.is_available_in_suite("trixie"));
    assert!(riscv.is_available_in_suite("sid"));
    assert!(riscv.is_available_in_suite("stable"));
    assert!(
        platforms
            .parse("arm64")
            .unwrap()
            .is_available_in_suite("bullseye")
    );
}

#[test]
fn big_endian_and_32_bit_facts() {
    let platforms = builtin();
    let s390x = platforms.parse("s390x").unwrap();
    assert_eq!(s390x.endian, Endian::Big);
    let armhf = platforms.parse("armhf").unwrap();
    assert_eq!(armhf.pointer_width, 32);
    assert_eq!(armhf.gnu_triple, "arm-linux-gnueabihf");
    assert_eq!(armhf.rust_triple(), "armv7-unknown-linux-gnueabihf");
    assert_eq!(armhf.oci.to_string(), "linux/arm/v7");
    let musl = platforms.parse("x86_64-linux-musl").unwrap();
    assert_eq!(musl.debian_arch, "amd64");
    assert_eq!(musl.elf_interpreter, None);
}

fn write_target(directory: &Path, name: &str, contents: &str) {
    fs_err::write(directory.join(format!("{name}.toml")), contents).unwrap();
}

const MIPS: &str = r#"
name = "mips64el-linux"
aliases = ["mips64el", "linux/mips64le"]
rust_triples = ["mips64el-unknown-linux-gnuabi64"]
gnu_triple = "mips64el-linux-gnuabi64"
debian_arch = "mips64el"
oci = { os = "linux", architecture = "mips64le" }
qemu = "mips64el"
endian = "little"
pointer_width = 64
libc = "gnu"
elf_interpreter = "/lib64/ld.so.1"
multiarch = "mips64el-linux-gnuabi64"
"#;

#[test]
fn extra_directory_adds_a_target() {
    let directory = tempfile::tempdir().unwrap();
    write_target(directory.path(), "mips64el-linux", MIPS);
    let mut platforms = builtin();
    platforms.load_extra_dir(directory.path()).unwrap();
    assert_eq!(platforms.all().len(), EXPECTED_BUILTIN.len() + 1);
    for input in [
        "mips64el",
        "linux/mips64le",
        "mips64el-unknown-linux-gnuabi64",
    ] {
        assert_eq!(platforms.parse(input).unwrap().name, "mips64el-linux");
    }
    assert!(
        platforms
            .all()
            .windows(2)
            .all(|pair| pair[0].name < pair[1].name)
    );
}

#[test]
fn extra_target_with_a_taken_alias_is_rejected() {
    let directory = tempfile::tempdir().unwrap();
    let stolen = MIPS.replace("\"mips64el\", ", "\"arm64\", ");
    write_target(directory.path(), "mips64el-linux", &stolen);
    let error = builtin().load_extra_dir(directory.path()).unwrap_err();
    assert!(
        matches!(&error, PlatformError::NameCollision { alias, first, second }
            if alias == "arm64" && first == "aarch64-linux" && second == "mips64el-linux"),
        "{error}"
    );
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let directory = tempfile::tempdir().unwrap();
    let broken = MIPS.replace("pointer_width = 64", "pointer_width = \"64\"");
    write_target(directory.path(), "mips64el-linux", &broken);
    let error = builtin().load_extra_dir(directory.path()).unwrap_err();
    let file = directory.path().join("mips64el-linux.toml");
    assert_eq!(
        error.to_string(),
        format!(
            "{}:10:17: invalid type: string \"64\", expected u32",
            file.display()
        )
    );
}

#[test]
fn unknown_field_is_a_syntax_error_with_position() {
    let error = parse_platform_file(
        Path::new("targets/mips64el-linux.toml"),
        &format!("{MIPS}colour = \"blue\"\n"),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "targets/mips64el-linux.toml:14:1: unknown field `colour`, expected one of"
        ),
        "{message}"
    );
}

#[test]
fn triple_disagreeing_with_declared_facts_is_rejected() {
    let cases = [
        (
            MIPS.replace("pointer_width = 64", "pointer_width = 32"),
            "rust_triples",
            "64-bit",
        ),
        (
            MIPS.replace("endian = \"little\"", "endian = \"big\""),
            "rust_triples",
            "endian",
        ),
        (
            MIPS.replace("libc = \"gnu\"", "libc = \"musl\"\n"),
            "rust_triples",
            "gnu triple",
        ),
        (
            MIPS.replace("name = \"mips64el-linux\"", "name = \"mips\""),
            "name",
            "file name",
        ),
        (
            MIPS.replace("elf_interpreter = \"/lib64/ld.so.1\"", ""),
            "elf_interpreter",
            "required",
        ),
    ];
    for (contents, field, fragment) in cases {
        let error =
            parse_platform_file(Path::new("extra/mips64el-linux.toml"), &contents).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("extra/mips64el-linux.toml: field `{field}`:")),
            "{message}"
        );
        assert!(message.contains(fragment), "{message}");
    }
}

#[test]
fn edit_distance_counts_single_edits() {
    assert_eq!(edit_distance("arm64", "arm64"), 0);
    assert_eq!(edit_distance("amr64", "arm64"), 1);
    assert_eq!(edit_distance("amr64", "amd64"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("arm6", "arm64"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
}
