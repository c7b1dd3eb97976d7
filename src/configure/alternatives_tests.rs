//! Postinst excerpts written for these tests on the model of bookworm's
//! (mawk, ed, less, netcat-openbsd, libblis4-pthread, openjdk-17,
//! procps), and databases checked against the host's
//! `update-alternatives --root` (tests/alternatives_network.rs does that
//! for real packages).

use super::*;
use std::path::Path;

fn slave(link: &str, name: &str, path: &str) -> Slave {
    Slave {
        link: link.into(),
        name: name.into(),
        path: path.into(),
    }
}

const MAWK: &str = r#"#!/bin/sh
set -e
# Automatically added by dh_installalternatives/13.7.1
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ]; then
        update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \
            --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz \
            --slave /usr/bin/nawk nawk /usr/bin/mawk
fi
# End automatically added section
"#;

#[test]
fn dh_installalternatives_block_is_read_with_its_continuations() {
    let parsed = parse_postinst("mawk", MAWK);
    assert_eq!(parsed.unreadable, []);
    assert_eq!(
        parsed.installs,
        [Install {
            link: "/usr/bin/awk".into(),
            name: "awk".into(),
            path: "/usr/bin/mawk".into(),
            priority: 5,
            slaves: vec![
                slave(
                    "/usr/share/man/man1/awk.1.gz",
                    "awk.1.gz",
                    "/usr/share/man/man1/mawk.1.gz"
                ),
                slave("/usr/bin/nawk", "nawk", "/usr/bin/mawk"),
            ],
            line: 5,
        }]
    );
}

#[test]
fn quiet_before_install_in_a_case_block_and_a_negative_priority() {
    let script = "#!/bin/sh\nset -e\n\ncase \"$1\" in\n  configure|abort-upgrade)\n\tupdate-alternatives --quiet --install /usr/bin/editor editor /bin/ed -100 \\\n\t  --slave /usr/share/man/man1/editor.1.gz editor.1.gz /usr/share/man/man1/ed.1.gz\n  ;;\n  *)\n    echo \"postinst called with unknown argument \\`$1'\" >&2\n    exit 0\n  ;;\nesac\n";
    let parsed = parse_postinst("ed", script);
    assert_eq!(parsed.unreadable, []);
    assert_eq!(parsed.installs.len(), 1);
    let install = &parsed.installs[0];
    assert_eq!(install.priority, -100);
    assert_eq!(install.path, "/bin/ed");
    assert_eq!(install.line, 6);
    assert_eq!(install.slaves[0].name, "editor.1.gz");
}

#[test]
fn arguments_split_over_lines_and_the_action_on_its_own_line() {
    // less and netcat-openbsd put the operands (or `--install` itself) on
    // continuation lines.
    let script = "case \"$1\" in\n  configure)\n    update-alternatives --quiet --install /usr/bin/pager pager \\\n      /usr/bin/less 77 --slave /usr/share/man/man1/pager.1.gz \\\n      pager.1.gz /usr/share/man/man1/less.1.gz\n  ;;\nesac\nif [ \"$1\" = \"configure\" ]; then\n    update-alternatives \\\n        --install /bin/nc nc /bin/nc.openbsd 50 \\\n        --slave /bin/netcat netcat /bin/nc.openbsd\nfi\n";
    let parsed = parse_postinst("p", script);
    assert_eq!(parsed.unreadable, []);
    let names: Vec<_> = parsed
        .installs
        .iter()
        .map(|install| (install.name.as_str(), install.priority, install.line))
        .collect();
    assert_eq!(names, [("pager", 77, 3), ("nc", 50, 9)]);
    assert_eq!(
        parsed.installs[0].slaves,
        [slave(
            "/usr/share/man/man1/pager.1.gz",
            "pager.1.gz",
            "/usr/share/man/man1/less.1.gz"
        )]
    );
}

#[test]
fn a_variable_set_once_literally_at_top_level_is_expanded() {
    // libblis4-pthread: `. confmodule` comes before the assignment.
    let script = "#!/bin/sh\nset -e\n. /usr/share/debconf/confmodule\nblis_pri=75\nARCH=\"aarch64-linux-gnu\"\n\nupdate-alternatives --install /usr/lib/$ARCH/libblas.so.3 \\\n    libblas.so.3-$ARCH \\\n    \"/usr/lib/${ARCH}/blis-pthread/libblas.so.3\" \\\n    $blis_pri\n";
    let parsed = parse_postinst("libblis4-pthread", script);
    assert_eq!(parsed.unreadable, []);
    let install = &parsed.installs[0];
    assert_eq!(install.link, "/usr/lib/aarch64-linux-gnu/libblas.so.3");
    assert_eq!(install.name, "libblas.so.3-aarch64-linux-gnu");
    assert_eq!(
        install.path,
        "/usr/lib/aarch64-linux-gnu/blis-pthread/libblas.so.3"
    );
    assert_eq!(install.priority, 75);
}

const JAVA: &str = r#"#!/bin/sh
set -e
priority=1711
basedir=/usr/lib/jvm/java-17-openjdk-arm64
jre_tools='java keytool'
case "$1" in
configure)
    if [ "$update_alternatives" = y ]; then
    if [ "$DPKG_MAINTSCRIPT_ARCH" != $(dpkg --print-architecture) ]; then
	priority=$(expr $priority - 1)
    fi
    for i in $jre_tools; do
        update-alternatives \
            --install \
            /usr/bin/$i \
            $i \
            $basedir/bin/$i \
            $priority
    done
    update-alternatives \
	--install /usr/bin/jexec jexec $basedir/lib/jexec $priority \
	--slave /usr/share/binfmts/jar jexec-binfmt $basedir/lib/jar.binfmt
    fi
esac
"#;

#[test]
fn a_call_in_a_loop_and_a_variable_set_twice_are_unreadable_not_guessed() {
    let parsed = parse_postinst("openjdk-17-jre-headless", JAVA);
    assert_eq!(parsed.installs, []);
    let lines: Vec<_> = parsed
        .unreadable
        .iter()
        .map(|unreadable| (unreadable.line, unreadable.reason.as_str()))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0].0, 13);
    assert!(lines[0].1.contains("loop"), "{lines:?}");
    assert_eq!(lines[1].0, 20);
    // `priority` is assigned twice: its value depends on the run.
    assert!(lines[1].1.contains("$priority"), "{lines:?}");
    assert!(
        parsed.unreadable[1]
            .text
            .starts_with("update-alternatives --install /usr/bin/jexec jexec"),
        "{}",
        parsed.unreadable[1].text
    );
    assert_eq!(parsed.unreadable[0].package, "openjdk-17-jre-headless");
}

#[test]
fn a_call_in_a_shell_function_is_unreadable() {
    // procps registers its alternatives through a function.
    let script = "check_alternatives() {\n  BINNAME=\"$1\"\n  if [ -e /usr/bin/\"$BINNAME\".procps ] ; then\n\tupdate-alternatives --install /usr/bin/\"$BINNAME\" \"$BINNAME\" \\\n\t    /usr/bin/\"$BINNAME\".procps 50\n  fi\n}\ncase \"$1\" in\n    configure)\n\tif dpkg --compare-versions \"$2\" le \"2:3.3.17-4\"; then\n\t    update-alternatives --remove w /usr/bin/w.procps\n\tfi\n\tcheck_alternatives \"uptime\"\n    ;;\nesac\n";
    let parsed = parse_postinst("procps", script);
    assert_eq!(parsed.installs, []);
    assert_eq!(parsed.unreadable.len(), 1, "{:?}", parsed.unreadable);
    assert_eq!(parsed.unreadable[0].line, 4);
    assert!(parsed.unreadable[0].reason.contains("function"));
}

#[test]
fn remove_is_ignored_and_set_is_reported() {
    let script = "update-alternatives --remove editor /usr/bin/old\nfor i in a b; do update-alternatives --remove $i /usr/bin/$i.old; done\nupdate-alternatives --query editor >/dev/null 2>&1 || true\nupdate-alternatives --set editor /usr/bin/vim.basic\n";
    let parsed = parse_postinst("p", script);
    assert_eq!(parsed.installs, []);
    assert_eq!(parsed.unreadable, []);
    assert_eq!(
        parsed.selections,
        [Selection {
            package: "p".into(),
            line: 4,
            arguments: vec!["--set".into(), "editor".into(), "/usr/bin/vim.basic".into()],
        }]
    );
}

#[test]
fn unknown_values_are_reported_with_their_line_and_text() {
    let cases = [
        // Never assigned (the environment).
        "update-alternatives --install /usr/bin/x x /usr/bin/x.$ARCH 50\n",
        // Assigned after the call.
        "update-alternatives --install /usr/bin/x x /usr/bin/x.$A 50\nA=b\n",
        // Assigned inside an `if`.
        "if true; then A=b; fi\nupdate-alternatives --install /usr/bin/x x /usr/bin/x.$A 50\n",
        // Command substitution.
        "update-alternatives --install /usr/bin/x x /usr/bin/x.$(uname -m) 50\n",
        // Split into several words.
        "S='--slave /usr/bin/y y /usr/bin/y.a'\nupdate-alternatives --install /usr/bin/x x /usr/bin/x.a 50 $S\n",
        // Read into.
        "A=b\nread A\nupdate-alternatives --install /usr/bin/x x /usr/bin/x.$A 50\n",
        // eval may set anything.
        "A=b\neval \"$SOMETHING\"\nupdate-alternatives --install /usr/bin/x x /usr/bin/x.$A 50\n",
        // Sourced between the assignment and the call.
        "A=b\n. /usr/share/x/lib.sh\nupdate-alternatives --install /usr/bin/x x /usr/bin/x.$A 50\n",
        // A pattern for pathname expansion.
        "update-alternatives --install /usr/bin/x x /usr/bin/x.* 50\n",
        // Not an integer.
        "update-alternatives --install /usr/bin/x x /usr/bin/x.a high\n",
        // The call inside a command substitution.
        "OUT=$(update-alternatives --install /usr/bin/x x /usr/bin/x.a 5)\n",
    ];
    for script in cases {
        let parsed = parse_postinst("p", script);
        assert_eq!(parsed.installs, [], "{script}");
        assert_eq!(
            parsed.unreadable.len(),
            1,
            "{script}: {:?}",
            parsed.unreadable
        );
        let unreadable = &parsed.unreadable[0];
        assert!(
            unreadable.text.contains("update-alternatives"),
            "{script}: {unreadable}"
        );
        assert!(
            script
                .lines()
                .nth(unreadable.line - 1)
                .unwrap()
                .contains("update-alternatives"),
            "{script}: line {}",
            unreadable.line
        );
    }
}

#[test]
fn quotes_escapes_comments_and_here_documents() {
    let script = "# update-alternatives --install /usr/bin/no no /no 1\ncat <<EOF\nupdate-alternatives --install /usr/bin/no no /no 1\nEOF\nD='/usr/share/doc dir'\nupdate-alternatives --install '/usr/bin/a b' \"a\"b /usr/bin/a\\ c 1 # trailing\n";
    let parsed = parse_postinst("p", script);
    assert_eq!(parsed.unreadable, []);
    assert_eq!(parsed.installs.len(), 1);
    let install = &parsed.installs[0];
    assert_eq!(install.link, "/usr/bin/a b");
    assert_eq!(install.name, "ab");
    assert_eq!(install.path, "/usr/bin/a c");
    assert_eq!(install.line, 6);
}

fn image(files: &[&str]) -> (tempfile::TempDir, impl Fn(&str) -> bool) {
    let image = tempfile::tempdir().unwrap();
    let owned: Vec<String> = files.iter().map(|file| file.to_string()).collect();
    (image, move |path: &str| {
        owned.iter().any(|file| file == path)
    })
}

fn read_link(root: &Path, path: &str) -> String {
    fs_err::read_link(root.join(path))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn apply_writes_links_and_the_database_byte_for_byte() {
    let (root, exists) = image(&["/usr/bin/mawk", "/usr/share/man/man1/mawk.1.gz"]);
    let parsed = parse_postinst("mawk", MAWK);
    let installs: Vec<_> = parsed
        .installs
        .into_iter()
        .map(|install| ("mawk".to_owned(), install))
        .collect();
    let chosen = apply(root.path(), &installs, &exists).unwrap();
    assert!(
        matches!(&chosen[..], [Chosen::Linked { name, package, path, slaves, missing_slaves, .. }]
            if name == "awk" && package == "mawk" && path == "/usr/bin/mawk"
                && slaves.len() == 2 && missing_slaves.is_empty()),
        "{chosen:?}"
    );
    assert_eq!(
        read_link(root.path(), "usr/bin/awk"),
        "/etc/alternatives/awk"
    );
    assert_eq!(
        read_link(root.path(), "etc/alternatives/awk"),
        "/usr/bin/mawk"
    );
    assert_eq!(
        read_link(root.path(), "usr/bin/nawk"),
        "/etc/alternatives/nawk"
    );
    assert_eq!(
        read_link(root.path(), "etc/alternatives/nawk"),
        "/usr/bin/mawk"
    );
    // What `update-alternatives --root R --install` wrote for this call.
    assert_eq!(
        fs_err::read_to_string(root.path().join("var/lib/dpkg/alternatives/awk")).unwrap(),
        "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\n\n\
         /usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n\n"
    );
}

fn call(name: &str, path: &str, priority: i32, slaves: Vec<Slave>) -> Install {
    Install {
        link: format!("/usr/bin/{name}"),
        name: name.into(),
        path: path.into(),
        priority,
        slaves,
        line: 1,
    }
}

#[test]
fn ties_keep_the_first_registered_and_absent_slaves_get_no_links() {
    // Measured with the host's update-alternatives 1.21: x.b, then x.c
    // (slave xs), then x.a (slave xt, absent), all priority 10.
    let (root, exists) = image(&[
        "/usr/bin/x.a",
        "/usr/bin/x.b",
        "/usr/bin/x.c",
        "/usr/bin/man-a",
    ]);
    let installs = [
        ("b".to_owned(), call("x", "/usr/bin/x.b", 10, vec![])),
        (
            "c".to_owned(),
            call(
                "x",
                "/usr/bin/x.c",
                10,
                vec![slave("/usr/bin/xs", "xs", "/usr/bin/man-a")],
            ),
        ),
        (
            "a".to_owned(),
            call(
                "x",
                "/usr/bin/x.a",
                10,
                vec![slave("/usr/bin/xt", "xt", "/usr/bin/nope")],
            ),
        ),
    ];
    let chosen = apply(root.path(), &installs, &exists).unwrap();
    assert!(
        matches!(&chosen[..], [Chosen::Linked { package, .. }] if package == "b"),
        "{chosen:?}"
    );
    assert_eq!(read_link(root.path(), "etc/alternatives/x"), "/usr/bin/x.b");
    assert_eq!(
        fs_err::read_to_string(root.path().join("var/lib/dpkg/alternatives/x")).unwrap(),
        "auto\n/usr/bin/x\nxs\n/usr/bin/xs\nxt\n/usr/bin/xt\n\n\
         /usr/bin/x.a\n10\n\n/usr/bin/nope\n\
         /usr/bin/x.b\n10\n\n\n\
         /usr/bin/x.c\n10\n/usr/bin/man-a\n\n\n"
    );
    // x.b has no slaves: none linked.
    assert!(!root.path().join("usr/bin/xs").exists());
    assert!(fs_err::symlink_metadata(root.path().join("usr/bin/xs")).is_err());
}

#[test]
fn higher_priority_wins_and_missing_slave_of_the_choice_is_reported() {
    let (root, exists) = image(&["/usr/bin/vim.tiny", "/bin/nano"]);
    let installs = [
        (
            "vim-tiny".to_owned(),
            call(
                "editor",
                "/usr/bin/vim.tiny",
                15,
                vec![slave(
                    "/usr/share/man/man1/editor.1.gz",
                    "editor.1.gz",
                    "/usr/share/man/man1/vim.1.gz",
                )],
            ),
        ),
        (
            "nano".to_owned(),
            call(
                "editor",
                "/bin/nano",
                40,
                vec![slave(
                    "/usr/share/man/man1/editor.1.gz",
                    "editor.1.gz",
                    "/usr/share/man/man1/nano.1.gz",
                )],
            ),
        ),
    ];
    let chosen = apply(root.path(), &installs, &exists).unwrap();
    let [
        Chosen::Linked {
            package,
            missing_slaves,
            slaves,
            ..
        },
    ] = &chosen[..]
    else {
        panic!("{chosen:?}");
    };
    assert_eq!(package, "nano");
    assert_eq!(slaves, &[]);
    assert_eq!(missing_slaves[0].path, "/usr/share/man/man1/nano.1.gz");
    assert_eq!(
        read_link(root.path(), "etc/alternatives/editor"),
        "/bin/nano"
    );
    assert!(fs_err::symlink_metadata(root.path().join("usr/share/man/man1/editor.1.gz")).is_err());
}

#[test]
fn a_missing_master_path_and_a_conflict_are_skipped() {
    let (root, exists) = image(&["/usr/bin/mawk", "/usr/bin/other"]);
    let installs = [
        ("gawk".to_owned(), call("awk", "/usr/bin/gawk", 10, vec![])),
        (
            "mawk".to_owned(),
            call(
                "awk",
                "/usr/bin/mawk",
                5,
                vec![slave("/usr/bin/nawk", "nawk", "/usr/bin/mawk")],
            ),
        ),
        (
            "other".to_owned(),
            call("nawk", "/usr/bin/other", 50, vec![]),
        ),
    ];
    let chosen = apply(root.path(), &installs, &exists).unwrap();
    assert_eq!(chosen.len(), 3, "{chosen:?}");
    assert!(matches!(&chosen[0], Chosen::Linked { path, .. } if path == "/usr/bin/mawk"));
    assert!(
        matches!(&chosen[1], Chosen::Skipped { package, reason: SkipReason::PathMissing, .. } if package == "gawk")
    );
    assert!(matches!(
        &chosen[2],
        Chosen::Skipped {
            reason: SkipReason::Conflict(_),
            ..
        }
    ));
    assert!(!root.path().join("var/lib/dpkg/alternatives/nawk").exists());
}

#[test]
fn paths_leaving_the_root_are_refused() {
    let (root, _) = image(&[]);
    let installs = [(
        "evil".to_owned(),
        Install {
            link: "/usr/bin/../../../x".into(),
            ..call("x", "/usr/bin/x.a", 1, vec![])
        },
    )];
    let chosen = apply(root.path(), &installs, &|_| true).unwrap();
    assert!(matches!(
        &chosen[..],
        [Chosen::Skipped {
            reason: SkipReason::Invalid(_),
            ..
        }]
    ));
}
