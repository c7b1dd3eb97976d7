//! Tests of the cross GCC: package names and path helpers offline; with the
//! network (`*_network`), real toolchains for aarch64 and s390x (big-endian)
//! that must compile, link statically and dynamically, and run under qemu.

use super::*;
use crate::platform::Platforms;
use std::time::Instant;

fn platform(name: &str) -> Platform {
    Platforms::builtin().unwrap().parse(name).unwrap().clone()
}

#[test]
fn package_names_follow_debian_spelling() {
    let aarch64 = cross_packages(&platform("aarch64-linux"), "12");
    for expected in [
        "gcc-12-aarch64-linux-gnu",
        "cpp-12-aarch64-linux-gnu",
        "g++-12-aarch64-linux-gnu",
        "binutils-aarch64-linux-gnu",
        "libgcc-12-dev-arm64-cross",
        "libstdc++-12-dev-arm64-cross",
        "libc6-dev-arm64-cross",
        "libc6-arm64-cross",
        "linux-libc-dev-arm64-cross",
        "libisl23",
        "libmpc3",
        "libjansson4",
    ] {
        assert!(aarch64.iter().any(|name| name == expected), "{expected}");
    }
    let i686 = cross_packages(&platform("i686-linux"), "12");
    assert!(i686.contains(&"gcc-12-i686-linux-gnu".to_owned()));
    assert!(i686.contains(&"libc6-dev-i386-cross".to_owned()));
    let armv7 = cross_packages(&platform("armv7-linux"), "12");
    assert!(armv7.contains(&"binutils-arm-linux-gnueabihf".to_owned()));
    assert!(armv7.contains(&"libc6-dev-armhf-cross".to_owned()));
    assert_eq!(package_triple("x86_64-linux-gnu"), "x86-64-linux-gnu");
}

/// Every name exists for every glibc target the host's apt knows (no
/// network: local apt lists only; skipped where apt has none).
#[test]
fn cross_package_names_are_known_to_apt() {
    let known = |names: &[String]| {
        Command::new("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(names)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !known(&["gcc-12-aarch64-linux-gnu".to_owned()]) {
        eprintln!("skipped: apt has no cross packages listed here");
        return;
    }
    for target in [
        "aarch64-linux",
        "s390x-linux",
        "armv7-linux",
        "ppc64le-linux",
        "i686-linux",
    ] {
        let names = cross_packages(&platform(target), "12");
        if !known(&names) {
            let unknown: Vec<&String> = names
                .iter()
                .filter(|name| !known(std::slice::from_ref(*name)))
                .collect();
            panic!("{target}: apt does not know {unknown:?}");
        }
    }
}

#[test]
fn relative_paths() {
    let path = |text: &str| PathBuf::from(text);
    assert_eq!(relative_path(&path("/r/a/b"), &path("/r/a/b/c")), path("c"));
    assert_eq!(
        relative_path(&path("/r/a/b"), &path("/r/x/y")),
        path("../../x/y")
    );
    assert_eq!(
        relative_path(&path("/r/sysroot/lib"), &path("/r/sysroot/usr/lib/m/ld.so")),
        path("../usr/lib/m/ld.so")
    );
    assert_eq!(relative_path(&path("/r"), &path("/r")), path("."));
    assert_eq!(
        normalise(&path("/usr/./lib/../include/x")),
        path("usr/include/x")
    );
    assert_eq!(normalise(&path("/../../etc")), path("etc"));
}

#[test]
fn absolute_symlink_targets_stay_inside_the_toolchain() {
    let work = Path::new("/w");
    let sysroot = Path::new("/w/sysroot");
    let triple = "aarch64-linux-gnu";
    let resolve = |link: &str, target: &str| {
        resolve_absolute(
            work,
            sysroot,
            Path::new(link),
            Path::new(target),
            triple,
            triple,
        )
    };
    assert_eq!(
        resolve(
            "/w/usr/lib/gcc-cross/x/libstdc++.so",
            "/usr/aarch64-linux-gnu/lib/libstdc++.so.6"
        ),
        Path::new("/w/sysroot/usr/lib/aarch64-linux-gnu/libstdc++.so.6")
    );
    assert_eq!(
        resolve("/w/usr/bin/x", "/usr/aarch64-linux-gnu/include/zlib.h"),
        Path::new("/w/sysroot/usr/include/zlib.h")
    );
    assert_eq!(
        resolve(
            "/w/sysroot/usr/lib/aarch64-linux-gnu/libz.so",
            "/lib/aarch64-linux-gnu/libz.so.1"
        ),
        Path::new("/w/sysroot/lib/aarch64-linux-gnu/libz.so.1")
    );
    assert_eq!(
        resolve(
            "/w/usr/lib/x86_64-linux-gnu/libfoo.so",
            "/../lib/x86_64-linux-gnu/libfoo.so.1"
        ),
        Path::new("/w/lib/x86_64-linux-gnu/libfoo.so.1")
    );
}

#[test]
fn linker_scripts_are_rewritten_into_the_sysroot() {
    let directory = tempfile::tempdir().unwrap();
    let script = directory.path().join("libc.so");
    fs_err::write(
        &script,
        "/* GNU ld script */\nOUTPUT_FORMAT(elf64-littleaarch64)\nGROUP ( /usr/aarch64-linux-gnu/lib/libc.so.6 /usr/aarch64-linux-gnu/lib/libc_nonshared.a  AS_NEEDED ( /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ) )\n",
    )
    .unwrap();
    // A shared object that happens to hold the same bytes is left alone.
    let elf = directory.path().join("libm.so.6");
    let elf_bytes = [
        &b"\x7fELF\x02\x01\xff GROUP ( /usr/aarch64-linux-gnu/lib/"[..],
        &[0xfe; 8],
    ]
    .concat();
    fs_err::write(&elf, &elf_bytes).unwrap();
    let old = "/usr/aarch64-linux-gnu/lib/";
    let new = "/usr/lib/aarch64-linux-gnu/";
    for path in [&script, &elf] {
        assert!(rewrite_linker_script(path, old, new).is_ok());
    }
    let text = fs_err::read_to_string(&script).unwrap();
    assert!(
        text.contains("GROUP ( /usr/lib/aarch64-linux-gnu/libc.so.6 /usr/lib/aarch64-linux-gnu/libc_nonshared.a  AS_NEEDED ( /usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1 ) )"),
        "{text}"
    );
    assert_eq!(fs_err::read(&elf).unwrap(), elf_bytes);
}

#[test]
fn assembling_nothing_fails_and_leaves_nothing_behind() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().join("toolchain");
    let error = assemble(&[], &platform("aarch64-linux"), &root).unwrap_err();
    assert!(matches!(error, ToolchainError::Missing { .. }), "{error:?}");
    assert!(!root.exists());
    assert_eq!(fs_err::read_dir(directory.path()).unwrap().count(), 0);

    fs_err::create_dir(&root).unwrap();
    let error = assemble(&[], &platform("aarch64-linux"), &root).unwrap_err();
    assert!(
        matches!(error, ToolchainError::RootExists { .. }),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------
// Real toolchains (network: Debian's archive through apt).

/// Facts read from an ELF header: machine, byte order, class, interpreter.
#[derive(Debug)]
struct ElfFacts {
    machine: u16,
    big_endian: bool,
    bits: u32,
    interpreter: Option<String>,
}

fn elf_facts(path: &Path) -> ElfFacts {
    let bytes = fs_err::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
    let bits = if bytes[4] == 2 { 64 } else { 32 };
    let big_endian = bytes[5] == 2;
    let number = |offset: usize, size: usize| -> u64 {
        let slice = &bytes[offset..offset + size];
        let mut value = 0u64;
        for index in 0..size {
            let byte = if big_endian {
                slice[index]
            } else {
                slice[size - 1 - index]
            };
            value = (value << 8) | u64::from(byte);
        }
        value
    };
    let machine = number(18, 2) as u16;
    let (phoff, phentsize, phnum) = if bits == 64 {
        (number(32, 8), number(54, 2), number(56, 2))
    } else {
        (number(28, 4), number(42, 2), number(44, 2))
    };
    let mut interpreter = None;
    for index in 0..phnum {
        let header = (phoff + index * phentsize) as usize;
        if number(header, 4) != 3 {
            continue; // not PT_INTERP
        }
        let (offset, size) = if bits == 64 {
            (number(header + 8, 8), number(header + 32, 8))
        } else {
            (number(header + 4, 4), number(header + 16, 4))
        };
        let text = &bytes[offset as usize..(offset + size) as usize];
        interpreter = Some(
            String::from_utf8_lossy(text)
                .trim_end_matches('\0')
                .to_owned(),
        );
    }
    ElfFacts {
        machine,
        big_endian,
        bits,
        interpreter,
    }
}

fn command_output(command: &mut Command) -> (String, String) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// Downloads the closure of [`cross_packages`] with apt into `directory`.
fn download_closure(target: &Platform, directory: &Path) -> Vec<PathBuf> {
    let roots = cross_packages(target, "12");
    let probe = Command::new("apt-cache")
        .args(["show", &roots[0]])
        .output()
        .unwrap();
    if !probe.status.success() {
        command_output(Command::new("apt-get").arg("update"));
    }
    let (closure, _) = command_output(
        Command::new("apt-cache")
            .args([
                "depends",
                "--recurse",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
            ])
            .args(["--no-breaks", "--no-replaces", "--no-enhances"])
            .args(&roots),
    );
    let mut names: Vec<&str> = closure
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.starts_with('<'))
        .collect();
    names.sort();
    names.dedup();
    command_output(
        Command::new("apt-get")
            .arg("download")
            .args(&names)
            .current_dir(directory),
    );
    let mut debs: Vec<PathBuf> = fs_err::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "deb"))
        .collect();
    debs.sort();
    assert_eq!(debs.len(), names.len());
    debs
}

const HELLO_C: &str = r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    unsigned int one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    printf("hello from C, %d-bit, %s-endian, %d arg(s), pid>0: %d\n",
           (int)(sizeof(void *) * 8), first ? "little" : "big", argc, getpid() > 0);
    return 0;
}
"#;

const HELLO_CXX: &str = r#"#include <iostream>
#include <string>
#include <vector>
int main() {
    std::vector<std::string> words{"hello", "from", "C++"};
    std::string line;
    for (const auto &word : words) line += (line.empty() ? "" : " ") + word;
    std::cout << line << std::endl;
}
"#;

fn check_real_toolchain(target_name: &str, machine: u16) {
    let target = platform(target_name);
    let scratch = tempfile::tempdir().unwrap();
    let downloads = scratch.path().join("debs");
    fs_err::create_dir(&downloads).unwrap();

    let started = Instant::now();
    let debs = download_closure(&target, &downloads);
    let download_time = started.elapsed();

    let started = Instant::now();
    let root = scratch.path().join("toolchain");
    let gcc = assemble(&debs, &target, &root).unwrap();
    let assemble_time = started.elapsed();
    assert!(
        gcc.version
            .starts_with(&format!("{}-gcc 12.", target.gnu_triple)),
        "{}",
        gcc.version
    );
    assert!(gcc.version.contains("binutils-"), "{}", gcc.version);
    assert!(!gcc.version.contains(scratch.path().to_str().unwrap()));

    // The toolchain is relocatable: move it, then use it from its new place.
    let moved = scratch.path().join("moved-toolchain");
    fs_err::rename(&root, &moved).unwrap();
    let gcc = CrossGcc::open(&moved).unwrap();
    let root = fs_err::canonicalize(&moved).unwrap();
    let root_text = root.to_str().unwrap().to_owned();

    // No host header directory on the include path, in C or C++.
    let cxx = gcc.cxx.clone().expect("g++ is among the cross packages");
    for (compiler, language) in [(&gcc.cc, "c"), (&cxx, "c++")] {
        let (_, verbose) = command_output(
            Command::new(compiler)
                .args(["-E", "-v", "-x", language, "-"])
                .stdin(Stdio::null()),
        );
        let search: Vec<&str> = verbose
            .lines()
            .skip_while(|line| !line.starts_with("#include <...> search starts here:"))
            .skip(1)
            .take_while(|line| !line.starts_with("End of search list."))
            .map(str::trim)
            .collect();
        assert!(!search.is_empty(), "{verbose}");
        for directory in &search {
            assert!(
                directory.starts_with(&root_text),
                "{language} include directory {directory} is outside the toolchain:\n{verbose}"
            );
        }
    }
    // Nor host library directories on the library path.
    let (search_dirs, _) = command_output(Command::new(&gcc.cc).arg("-print-search-dirs"));
    for line in search_dirs
        .lines()
        .filter(|line| line.starts_with("libraries: "))
    {
        for directory in line["libraries: ".len()..]
            .trim_start_matches('=')
            .split(':')
        {
            assert!(
                directory.starts_with(&root_text),
                "library directory {directory} is outside the toolchain"
            );
        }
    }

    let source = scratch.path().join("hello.c");
    fs_err::write(&source, HELLO_C).unwrap();
    let static_program = scratch.path().join("hello-static");
    let dynamic_program = scratch.path().join("hello-dynamic");
    let started = Instant::now();
    command_output(
        Command::new(&gcc.cc)
            .args(["-O2", "-static", "-o"])
            .arg(&static_program)
            .arg(&source),
    );
    let static_time = started.elapsed();
    let started = Instant::now();
    let (trace, _) = command_output(
        Command::new(&gcc.cc)
            .args(["-O2", "-Wl,-t", "-o"])
            .arg(&dynamic_program)
            .arg(&source),
    );
    let dynamic_time = started.elapsed();
    // Every file the linker read came from the toolchain (or is the
    // compiler's temporary object): none from the host's /usr or /lib.
    let read: Vec<&str> = trace.lines().filter(|line| line.starts_with('/')).collect();
    assert!(
        read.iter().any(|line| line.contains("libc.so.6")),
        "{trace}"
    );
    for line in read {
        let file = line.split('(').next().unwrap_or(line);
        assert!(
            file.starts_with(&root_text)
                || !(file.starts_with("/usr/") || file.starts_with("/lib")),
            "the linker read {line} from the host"
        );
    }

    let expected_endian = if target.endian == crate::platform::Endian::Big {
        "big"
    } else {
        "little"
    };
    let expected = format!("hello from C, 64-bit, {expected_endian}-endian, 1 arg(s), pid>0: 1\n");
    let qemu = format!("qemu-{}-static", target.qemu);
    for (program, dynamic) in [(&static_program, false), (&dynamic_program, true)] {
        let facts = elf_facts(program);
        assert_eq!(facts.machine, machine, "{facts:?}");
        assert_eq!(facts.bits, 64);
        assert_eq!(
            facts.big_endian,
            target.endian == crate::platform::Endian::Big
        );
        if dynamic {
            assert_eq!(facts.interpreter, target.elf_interpreter, "{facts:?}");
        } else {
            assert_eq!(facts.interpreter, None, "{facts:?}");
        }
        let mut command = Command::new(&qemu);
        if dynamic {
            command.arg("-L").arg(&gcc.sysroot);
        }
        let (stdout, _) = command_output(command.arg(program));
        assert_eq!(stdout, expected, "{}", program.display());
    }

    // C++, dynamically linked against the sysroot's libstdc++.
    let source = scratch.path().join("hello.cc");
    fs_err::write(&source, HELLO_CXX).unwrap();
    let program = scratch.path().join("hello-cxx");
    let started = Instant::now();
    command_output(
        Command::new(&cxx)
            .args(["-O2", "-o"])
            .arg(&program)
            .arg(&source),
    );
    let cxx_time = started.elapsed();
    assert_eq!(elf_facts(&program).interpreter, target.elf_interpreter);
    let (stdout, _) = command_output(
        Command::new(&qemu)
            .arg("-L")
            .arg(&gcc.sysroot)
            .arg(&program),
    );
    assert_eq!(stdout, "hello from C++\n");

    // The other tools run (they need binutils' private libraries).
    let archive = scratch.path().join("libhello.a");
    command_output(
        Command::new(&gcc.ar)
            .arg("rcs")
            .arg(&archive)
            .arg(&static_program),
    );
    command_output(Command::new(&gcc.ranlib).arg(&archive));
    command_output(Command::new(&gcc.strip).arg(&dynamic_program));

    eprintln!(
        "{target_name}: {} packages downloaded in {download_time:.2?}, assembled in {assemble_time:.2?}; \
         C static {static_time:.2?}, C dynamic {dynamic_time:.2?}, C++ {cxx_time:.2?}; {}",
        debs.len(),
        gcc.version
    );
}

#[test]
fn aarch64_cross_gcc_network() {
    check_real_toolchain("aarch64-linux", 183);
}

#[test]
fn s390x_cross_gcc_network() {
    check_real_toolchain("s390x-linux", 22);
}

// ---------------------------------------------------------------------------
// Concurrent unpacking (offline: packages made with dpkg-deb).

use crate::debian::deb::tests::{TestFile, build_test_deb};

/// Builds `<package>_1.0-1_arm64.deb` in `directory` holding `files`.
fn test_deb(directory: &Path, package: &str, files: &[TestFile<'_>]) -> PathBuf {
    build_test_deb(directory, package, files, &[], None, "xz")
}

#[test]
fn packages_are_unpacked_together_and_named_in_the_identity() {
    let scratch = tempfile::tempdir().unwrap();
    let mut debs = Vec::new();
    for index in 0..12 {
        let name = format!("lib{index}-arm64-cross");
        let file = format!("usr/aarch64-linux-gnu/lib/sub/lib{index}.so");
        debs.push(test_deb(
            scratch.path(),
            &name,
            &[TestFile::Regular(&file, name.as_bytes())],
        ));
    }
    debs.push(test_deb(
        scratch.path(),
        "binutils-aarch64-linux-gnu",
        &[TestFile::Executable("usr/bin/aarch64-linux-gnu-as", b"as")],
    ));
    debs.push(test_deb(
        scratch.path(),
        "zlib1g",
        &[TestFile::Regular(
            "usr/lib/x86_64-linux-gnu/libz.so.1",
            b"z",
        )],
    ));
    // The build machine's C library is never unpacked.
    debs.push(test_deb(
        scratch.path(),
        "libc6",
        &[TestFile::Regular(
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            b"c",
        )],
    ));

    let root = scratch.path().join("toolchain");
    let assembly = Assembly::begin(&platform("aarch64-linux"), &root).unwrap();
    assembly.add_all(&debs).unwrap();
    let (tree, identity) = assembly.unpacked().unwrap();
    for index in 0..12 {
        let file = tree
            .path()
            .join(format!("usr/aarch64-linux-gnu/lib/sub/lib{index}.so"));
        assert_eq!(
            fs_err::read(&file).unwrap(),
            format!("lib{index}-arm64-cross").as_bytes()
        );
    }
    assert!(tree.path().join("usr/bin/aarch64-linux-gnu-as").is_file());
    assert!(
        tree.path()
            .join("usr/lib/x86_64-linux-gnu/libz.so.1")
            .is_file()
    );
    assert!(
        !tree
            .path()
            .join("usr/lib/x86_64-linux-gnu/libc.so.6")
            .exists()
    );
    let mut expected: Vec<String> = (0..12)
        .map(|index| format!("lib{index}-arm64-cross 1.0-1"))
        .collect();
    expected.push("binutils-aarch64-linux-gnu 1.0-1".to_owned());
    expected.sort();
    assert_eq!(identity, expected);
    // Nothing but the tree being built was written beside `root`.
    assert!(!root.exists());
}

/// Two packages that ship the same paths end as if unpacked one after
/// another in order, whichever is added first.
#[test]
fn overlapping_packages_end_as_if_unpacked_in_order() {
    let scratch = tempfile::tempdir().unwrap();
    let first = test_deb(
        scratch.path(),
        "first",
        &[
            TestFile::Regular("usr/share/same", b"first"),
            TestFile::Regular("usr/lib/link", b"a file"),
        ],
    );
    let second = test_deb(
        scratch.path(),
        "second",
        &[
            TestFile::Regular("usr/share/same", b"second"),
            TestFile::Symlink("usr/lib/link", "same"),
            TestFile::Regular("usr/share/only-second", b"2"),
        ],
    );
    let debs = [first, second];
    for adds in [[0, 1], [1, 0]] {
        let root = scratch
            .path()
            .join(format!("toolchain-{}{}", adds[0], adds[1]));
        let assembly = Assembly::begin(&platform("aarch64-linux"), &root).unwrap();
        for index in adds {
            assembly.add(index, &debs[index]).unwrap();
        }
        let (tree, _) = assembly.unpacked().unwrap();
        assert_eq!(
            fs_err::read(tree.path().join("usr/share/same")).unwrap(),
            b"second",
            "{adds:?}"
        );
        assert_eq!(
            fs_err::read_link(tree.path().join("usr/lib/link")).unwrap(),
            Path::new("same"),
            "{adds:?}"
        );
        assert!(tree.path().join("usr/share/only-second").is_file());
        // The abandoned concurrent tree is gone: one directory is left.
        let left: Vec<_> = fs_err::read_dir(scratch.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".partial-"))
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }
}

#[test]
fn an_abandoned_assembly_leaves_nothing_behind() {
    let scratch = tempfile::tempdir().unwrap();
    let debs = [test_deb(
        scratch.path(),
        "libc6-arm64-cross",
        &[TestFile::Regular(
            "usr/aarch64-linux-gnu/lib/libc.so.6",
            b"c",
        )],
    )];
    let parent = scratch.path().join("toolchains");
    let root = parent.join("toolchain");
    let assembly = Assembly::begin(&platform("aarch64-linux"), &root).unwrap();
    assembly.add_all(&debs).unwrap();
    drop(assembly);
    assert_eq!(fs_err::read_dir(&parent).unwrap().count(), 0);

    // A package that cannot be read is named in the error.
    let broken = scratch.path().join("broken.deb");
    fs_err::write(&broken, b"not an ar archive").unwrap();
    let assembly = Assembly::begin(&platform("aarch64-linux"), &root).unwrap();
    let error = assembly
        .add_all(&[debs[0].clone(), broken.clone()])
        .unwrap_err();
    assert!(
        matches!(&error, ToolchainError::Control { deb, .. } if deb == &broken),
        "{error:?}"
    );
    drop(assembly);
    assert_eq!(fs_err::read_dir(&parent).unwrap().count(), 0);
}
