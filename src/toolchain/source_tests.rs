use super::*;
use fs_err as fs;

#[test]
fn musl_arch_names_the_cpu_family() {
    assert_eq!(musl_arch("aarch64-linux-musl"), Some("aarch64"));
    assert_eq!(musl_arch("x86_64-linux-musl"), Some("x86_64"));
    assert_eq!(musl_arch("armv7-linux-musleabihf"), Some("arm"));
    assert_eq!(musl_arch("i686-linux-musl"), Some("i386"));
    assert_eq!(musl_arch("powerpc64le-linux-musl"), Some("powerpc64"));
    assert_eq!(musl_arch("s390x-linux-musl"), Some("s390x"));
    assert_eq!(musl_arch("loongarch64-linux-musl"), None);
}

#[test]
fn find_tarball_wants_exactly_one_match() {
    let dir = tempfile::tempdir().unwrap();
    let usr_src = dir.path().join("usr/src");
    fs::create_dir_all(usr_src.join("gcc-12/debian")).unwrap();
    fs::write(usr_src.join("gcc-12/gcc-12.2.0-dfsg.tar.xz"), "x").unwrap();
    fs::write(usr_src.join("gcc-12/gm2-20220506.tar.xz"), "x").unwrap();
    assert_eq!(
        find_tarball(&usr_src, "gcc-"),
        Some(usr_src.join("gcc-12/gcc-12.2.0-dfsg.tar.xz"))
    );
    assert_eq!(find_tarball(&usr_src, "binutils-"), None);
    fs::write(usr_src.join("gcc-12/gcc-extra.tar.gz"), "x").unwrap();
    assert_eq!(find_tarball(&usr_src, "gcc-"), None, "two candidates");
}

#[test]
fn kernel_headers_get_the_architecture_asm_directory() {
    let dir = tempfile::tempdir().unwrap();
    let include = dir.path().join("usr/include");
    for (path, text) in [
        ("linux/types.h", "linux"),
        ("asm-generic/int-ll64.h", "generic"),
        ("aarch64-linux-gnu/asm/types.h", "arm64 asm"),
        ("x86_64-linux-gnu/asm/types.h", "other arch"),
    ] {
        let path = include.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
    }
    let sysroot = dir.path().join("sysroot");
    install_kernel_headers(&include, "aarch64-linux-gnu", &sysroot).unwrap();
    let read = |path: &str| fs::read_to_string(sysroot.join("usr/include").join(path)).unwrap();
    assert_eq!(read("linux/types.h"), "linux");
    assert_eq!(read("asm-generic/int-ll64.h"), "generic");
    assert_eq!(read("asm/types.h"), "arm64 asm");
    // Another architecture's directory is copied as is, not merged.
    assert_eq!(read("x86_64-linux-gnu/asm/types.h"), "other arch");

    let empty = dir.path().join("empty/usr/include/linux");
    fs::create_dir_all(&empty).unwrap();
    let error = install_kernel_headers(
        empty.parent().unwrap(),
        "aarch64-linux-gnu",
        &dir.path().join("sysroot2"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("kernel headers"), "{error}");
}

#[test]
fn shared_libraries_are_removed_static_archives_kept() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["libgmp.a", "libgmp.so", "libgmp.so.10", "libgmp.so.10.4.1"] {
        fs::write(dir.path().join(name), "x").unwrap();
    }
    remove_shared_libraries(dir.path()).unwrap();
    let left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["libgmp.a"]);
}

#[test]
fn a_failing_step_quotes_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let builder = Builder {
        work: dir.path().to_owned(),
        log: dir.path().join("build.log"),
        jobs: 1,
        stage: dir.path().join("install"),
        path: std::env::var_os("PATH").unwrap_or_default(),
        started: Instant::now(),
    };
    builder.start_log("aarch64-linux-musl").unwrap();
    builder
        .step("say hello", Command::new("sh").args(["-c", "echo hello"]))
        .unwrap();
    let error = builder
        .step(
            "configure gcc",
            Command::new("sh").args(["-c", "seq 1 40; echo 'no C compiler' >&2; exit 3"]),
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("configure gcc failed"), "{error}");
    assert!(error.contains("no C compiler"), "{error}");
    assert!(error.contains("build.log"), "{error}");
    assert!(error.contains("\n40\n"), "{error}");
    assert!(!error.contains("\n5\n"), "only the tail: {error}");
    let log = fs::read_to_string(dir.path().join("build.log")).unwrap();
    assert!(log.contains("hello\n"), "{log}");
    assert!(log.contains("step done: say hello"), "{log}");
}

#[test]
fn shipped_lexers_and_parsers_are_made_newer_than_their_grammars() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("binutils");
    fs::create_dir_all(&sub).unwrap();
    let at = |seconds: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    let write = |name: &str, seconds: u64| {
        let path = sub.join(name);
        fs::write(&path, name).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(at(seconds))
            .unwrap();
    };
    write("arlex.l", 2000);
    write("arlex.c", 1000);
    write("arparse.y", 1000);
    write("arparse.c", 1000);
    write("arparse.h", 1000);
    write("deflex.l", 1000);
    write("deflex.c", 5000);
    keep_generated_sources(dir.path()).unwrap();
    let time = |name: &str| fs::metadata(sub.join(name)).unwrap().modified().unwrap();
    assert_eq!(time("arlex.c"), at(2001));
    assert_eq!(time("arparse.c"), at(1001));
    assert_eq!(time("arparse.h"), at(1001));
    assert_eq!(time("deflex.c"), at(5000), "already newer: untouched");
    assert_eq!(time("arlex.l"), at(2000), "grammars untouched");
}

#[test]
fn a_missing_host_tool_is_named_with_its_package() {
    let dir = tempfile::tempdir().unwrap();
    // A PATH with gcc, g++ and make but no flex.
    for tool in ["gcc", "g++", "make"] {
        let real = which(tool);
        std::os::unix::fs::symlink(real, dir.path().join(tool)).unwrap();
    }
    let error = check_host_tools(dir.path().as_os_str())
        .unwrap_err()
        .to_string();
    assert!(error.contains("`flex`"), "{error}");
    assert!(error.contains("apt-get install flex"), "{error}");
    let error = check_host_tools(std::ffi::OsStr::new("/nonexistent"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("`gcc`"), "{error}");
}

fn which(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH"))
}
