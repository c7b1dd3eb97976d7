//! The system-call log of qemu-user (`QEMU_LOG=strace`) read into the
//! paths a run used.
//!
//! qemu writes one line per call, `PID name(args) = result`; a call that
//! blocks is written in two parts, `PID read(0,0x…,4096)` first and the
//! result (` = 4`) later, possibly after other processes' lines. Only calls
//! that succeeded name files the program needs (`= -1 errno=2 (No such
//! file or directory)` does not); `execve` does not return when it works,
//! so its line has no result. Paths relative to the working directory are
//! made absolute against the process's last `chdir` (`/` at first, the
//! image's workdir in practice); calls relative to a directory descriptor
//! other than `AT_FDCWD` are resolved when that descriptor came from an
//! `openat` seen earlier, and kept as a name under `/` otherwise (a file
//! that might be missed is added to the closure by name only).

use std::collections::{BTreeSet, HashMap};

/// The system calls whose first path argument names a file the program
/// used, and which argument (0-based, after an optional dirfd) it is.
const PATH_CALLS: &[(&str, bool)] = &[
    // (name, has a dirfd first)
    ("open", false),
    ("openat", true),
    ("openat2", true),
    ("creat", false),
    ("stat", false),
    ("stat64", false),
    ("lstat", false),
    ("lstat64", false),
    ("newfstatat", true),
    ("fstatat64", true),
    ("statx", true),
    ("access", false),
    ("faccessat", true),
    ("faccessat2", true),
    ("readlink", false),
    ("readlinkat", true),
    ("execve", false),
    ("execveat", true),
    ("chdir", false),
    ("opendir", false),
    ("getxattr", false),
    ("lgetxattr", false),
    ("truncate", false),
    ("utimensat", true),
    ("statfs", false),
];

/// What a run touched, in image paths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Every path a call succeeded on (opened, stat'ed, read as a link…).
    pub paths: BTreeSet<String>,
    /// Programs given to `execve` (the kernel and qemu load them; no call
    /// of the program names them).
    pub executed: BTreeSet<String>,
    /// Lines that looked like calls of interest but could not be read.
    pub unreadable: usize,
}

/// A call whose result is still to come (blocked when it was logged).
struct Pending {
    name: String,
    /// `None` for a call that names no file (`wait4`, `read`): tracked
    /// only so that a result without a process id goes to the right call.
    path: Option<String>,
}

/// Reads a qemu strace log incrementally: feed it lines as they come.
pub struct TraceParser {
    trace: Trace,
    /// The working directory of each process, as far as it is known.
    cwd: HashMap<u32, String>,
    /// Directories opened per process: fd → path.
    fds: HashMap<(u32, i64), String>,
    /// Blocked calls in the order they were logged, by process.
    pending: Vec<(u32, Pending)>,
    initial_cwd: String,
}

impl TraceParser {
    /// `cwd`: the working directory the traced command starts in.
    pub fn new(cwd: &str) -> TraceParser {
        TraceParser {
            trace: Trace::default(),
            cwd: HashMap::new(),
            fds: HashMap::new(),
            pending: Vec::new(),
            initial_cwd: normalize("/", cwd),
        }
    }

    /// The trace; a call still blocked when its process ended (killed)
    /// counts as one that worked: a path kept needlessly costs bytes, one
    /// left out breaks the image.
    pub fn finish(mut self) -> Trace {
        for (pid, pending) in std::mem::take(&mut self.pending) {
            self.resume(pid, pending, None);
        }
        self.trace
    }

    fn resume(&mut self, pid: u32, pending: Pending, result: Option<&str>) {
        if let Some(path) = &pending.path {
            self.complete(pid, &pending.name, path, result);
        }
    }

    /// One line of the log (without its newline). A call that has no
    /// result yet (blocked, or an `execve` that worked) may have another
    /// process's line written right after it on the same line: each is
    /// read on its own.
    pub fn line(&mut self, line: &str) {
        for part in split_joined(line) {
            self.call(part);
        }
    }

    fn call(&mut self, line: &str) {
        let line = line.trim_end();
        // A blocked call's result, ` = 4`: qemu writes it without the
        // process id (then it is the oldest blocked call's), or with it.
        if let Some(result) = line.trim_start().strip_prefix("= ") {
            if !self.pending.is_empty() {
                let (pid, pending) = self.pending.remove(0);
                self.resume(pid, pending, Some(result));
            }
            return;
        }
        let Some((pid, rest)) = split_pid(line) else {
            return;
        };
        let rest = rest.trim_start();
        if let Some(result) = rest.strip_prefix("= ") {
            if let Some(index) = self.pending.iter().position(|(owner, _)| *owner == pid) {
                let (_, pending) = self.pending.remove(index);
                self.resume(pid, pending, Some(result));
            }
            return;
        }
        let Some(open) = rest.find('(') else {
            return;
        };
        let name = &rest[..open];
        if !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            return;
        }
        let arguments = &rest[open + 1..];
        let Some(&(_, has_dirfd)) = PATH_CALLS.iter().find(|(call, _)| *call == name) else {
            // exit and exit_group never return.
            if result_of(arguments).is_none() && !name.starts_with("exit") {
                self.pending.push((
                    pid,
                    Pending {
                        name: name.to_owned(),
                        path: None,
                    },
                ));
            }
            return;
        };
        let Some((dirfd, path, after)) = path_argument(arguments, has_dirfd) else {
            self.trace.unreadable += 1;
            return;
        };
        let Some(path) = self.absolute(pid, dirfd, &path) else {
            return;
        };
        match result_of(after) {
            Some(result) => self.complete(pid, name, &path, Some(result)),
            // execve that worked never returns; other calls return later.
            None if name == "execve" || name == "execveat" => self.complete(pid, name, &path, None),
            None => {
                self.pending.push((
                    pid,
                    Pending {
                        name: name.to_owned(),
                        path: Some(path),
                    },
                ));
            }
        }
    }

    fn complete(&mut self, pid: u32, name: &str, path: &str, result: Option<&str>) {
        let value = match result {
            Some(result) => {
                let value = result.split_whitespace().next().unwrap_or("");
                match value.parse::<i64>() {
                    Ok(number) if number < 0 => return,
                    Ok(number) => Some(number),
                    // `0x…` results (mmap-like) or something else: a success.
                    Err(_) => None,
                }
            }
            None => None,
        };
        match name {
            "execve" | "execveat" => {
                // A failed execve has a result of -1, handled above.
                self.trace.executed.insert(path.to_owned());
            }
            "chdir" => {
                self.cwd.insert(pid, path.to_owned());
            }
            "open" | "openat" | "openat2" | "opendir" => {
                if let Some(fd) = value {
                    self.fds.insert((pid, fd), path.to_owned());
                }
            }
            _ => {}
        }
        self.trace.paths.insert(path.to_owned());
    }

    /// The absolute form of `path` as process `pid` passed it.
    fn absolute(&self, pid: u32, dirfd: Option<&str>, path: &str) -> Option<String> {
        if path.starts_with('/') {
            return Some(normalize("/", path));
        }
        let base = match dirfd {
            None | Some("AT_FDCWD") | Some("-100") => self
                .cwd
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| self.initial_cwd.clone()),
            Some(fd) => match fd.parse::<i64>() {
                Ok(fd) => self.fds.get(&(pid, fd)).cloned()?,
                Err(_) => return None,
            },
        };
        // `fstatat(3, "", …, AT_EMPTY_PATH)`: the descriptor itself.
        Some(normalize(&base, path))
    }
}

/// `line` cut where another process's line begins right after a call's
/// closing parenthesis (outside quotes): `4 execve("/x",{"/x",NULL})2
/// close(5) = 0` is two lines.
fn split_joined(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' if quoted => index += 1,
            b'"' => quoted = !quoted,
            b')' if !quoted && starts_call(&line[index + 1..]) => {
                parts.push(&line[start..=index]);
                start = index + 1;
            }
            _ => {}
        }
        index += 1;
    }
    parts.push(&line[start..]);
    parts
}

/// Whether `text` starts like a logged call: `PID name(`.
fn starts_call(text: &str) -> bool {
    let Some((_, rest)) = split_pid(text) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(' ') else {
        return false;
    };
    let name_length = rest
        .bytes()
        .take_while(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
        .count();
    name_length > 0 && rest[name_length..].starts_with('(')
}

/// `12345 rest` → (12345, `rest`).
fn split_pid(line: &str) -> Option<(u32, &str)> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let pid = line[..digits].parse().ok()?;
    Some((pid, &line[digits..]))
}

/// The dirfd (when the call has one), the quoted path, and the text after
/// the path's closing quote.
fn path_argument(arguments: &str, has_dirfd: bool) -> Option<(Option<&str>, String, &str)> {
    let (dirfd, rest) = if has_dirfd {
        let comma = arguments.find(',')?;
        (Some(arguments[..comma].trim()), &arguments[comma + 1..])
    } else {
        (None, arguments)
    };
    let rest = rest.strip_prefix('"')?;
    let (path, after) = quoted(rest)?;
    Some((dirfd, path, after))
}

/// A C string as qemu prints it, up to its closing quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut characters = text.char_indices();
    while let Some((index, character)) = characters.next() {
        match character {
            '"' => return Some((value, &text[index + 1..])),
            '\\' => match characters.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// The result after the call's arguments: `… ) = 3` → `3`; `None` when
/// the line ends before it (the call blocked).
fn result_of(after: &str) -> Option<&str> {
    // The last ") = " of the line: arguments may hold `=` themselves.
    let index = after.rfind(") = ")?;
    Some(after[index + 4..].trim())
}

/// `path` joined to `base` and normalised (`.`, `..`, `//`), absolute.
pub fn normalize(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{base}/{path}")
    };
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Trace {
        let mut parser = TraceParser::new("/");
        for line in text.lines() {
            parser.line(line);
        }
        parser.finish()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn successful_opens_and_stats_are_kept_failed_ones_are_not() {
        let trace = parse(
            "1234 openat(AT_FDCWD,\"/etc/ld.so.cache\",O_RDONLY|O_CLOEXEC) = 3\n\
             1234 openat(AT_FDCWD,\"/lib/aarch64-linux-gnu/libc.so.6\",O_RDONLY|O_CLOEXEC) = 3\n\
             1234 openat(AT_FDCWD,\"/usr/lib/aarch64-linux-gnu/tls/libc.so.6\",O_RDONLY|O_CLOEXEC) = -1 errno=2 (No such file or directory)\n\
             1234 newfstatat(AT_FDCWD,\"/usr/share/perl5\",0x0000005502b0e8c0,0) = 0\n\
             1234 faccessat(AT_FDCWD,\"/etc/ld.so.preload\",R_OK,0x3) = -1 errno=2 (No such file or directory)\n\
             1234 readlinkat(AT_FDCWD,\"/proc/self/exe\",0x5500,4095) = 13\n\
             1234 mmap(NULL,8192,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0) = 0x0000005502a3c000\n\
             1234 exit_group(0)\n",
        );
        assert_eq!(
            trace.paths,
            set(&[
                "/etc/ld.so.cache",
                "/lib/aarch64-linux-gnu/libc.so.6",
                "/proc/self/exe",
                "/usr/share/perl5",
            ])
        );
        assert!(trace.executed.is_empty());
    }

    #[test]
    fn execve_has_no_result_when_it_works() {
        let trace = parse(
            "77 execve(\"/bin/true\",{\"/bin/true\",NULL})\n\
             78 execve(\"/usr/local/bin/true\",{\"true\",NULL}) = -1 errno=2 (No such file or directory)\n\
             78 execve(\"/usr/bin/true\",{\"true\",NULL})\n",
        );
        assert_eq!(trace.executed, set(&["/bin/true", "/usr/bin/true"]));
        assert_eq!(trace.paths, set(&["/bin/true", "/usr/bin/true"]));
    }

    #[test]
    fn a_blocked_call_finishes_on_a_continuation_line() {
        let trace = parse(
            "10 openat(AT_FDCWD,\"/run/fifo\",O_RDONLY)\n\
             11 openat(AT_FDCWD,\"/etc/hostname\",O_RDONLY|O_CLOEXEC) = 3\n\
             10  = 4\n\
             12 openat(AT_FDCWD,\"/run/missing\",O_RDONLY)\n\
             12  = -1 errno=2 (No such file or directory)\n\
             13 openat(AT_FDCWD,\"/run/other\",O_RDONLY)\n\
              = -1 errno=2 (No such file or directory)\n\
             14 read(0,0x5500,4096)\n\
             14 openat(AT_FDCWD,\"/run/killed\",O_RDONLY)\n",
        );
        // A call still blocked at the end counts: its process was killed.
        assert_eq!(
            trace.paths,
            set(&["/etc/hostname", "/run/fifo", "/run/killed"])
        );
    }

    /// As qemu 7.2 wrote them here: an execve that worked has no result,
    /// and the next process's line follows on the same line; a blocked
    /// wait4's result comes later without a process id.
    #[test]
    fn lines_joined_after_a_call_without_result() {
        let trace = parse(
            "2 wait4(4,365117871892,0,0,1,0)\n\
             4 execve(\"/usr/bin/perl\",{\"/usr/bin/perl\",\"-e\",\"open my $f, q(/etc/hostname)\",NULL})2 openat(AT_FDCWD,\"/etc/a\",O_RDONLY) = -1 errno=2 (No such file or directory)\n\
             5 openat(AT_FDCWD,\"/etc/fifo\",O_RDONLY)\n\
              = 4\n\
              = -1 errno=4 (Interrupted system call)\n\
             4 execve(\"/bin/x\",{\"x\",NULL})4 openat(AT_FDCWD,\"/etc/b\",O_RDONLY) = 3\n",
        );
        assert_eq!(trace.executed, set(&["/bin/x", "/usr/bin/perl"]));
        // /etc/fifo's open was interrupted: the ` = 4` was wait4's.
        assert_eq!(trace.paths, set(&["/bin/x", "/etc/b", "/usr/bin/perl"]));
    }

    #[test]
    fn relative_paths_follow_chdir_and_directory_descriptors() {
        let mut parser = TraceParser::new("/work");
        for line in [
            "5 openat(AT_FDCWD,\"data/a.txt\",O_RDONLY) = 3",
            "5 chdir(\"/usr/share\") = 0",
            "5 stat(\"cowsay/../perl5/x.pm\",0x55) = 0",
            "5 openat(AT_FDCWD,\"/usr/lib/perl\",O_RDONLY|O_DIRECTORY) = 4",
            "5 newfstatat(4,\"Config.pm\",0x55,0) = 0",
            "5 newfstatat(9,\"unknown\",0x55,0) = 0",
            "6 openat(AT_FDCWD,\"./b\",O_RDONLY) = 3",
        ] {
            parser.line(line);
        }
        let trace = parser.finish();
        assert_eq!(
            trace.paths,
            set(&[
                "/usr/lib/perl",
                "/usr/lib/perl/Config.pm",
                "/usr/share",
                "/usr/share/perl5/x.pm",
                "/work/b",
                "/work/data/a.txt",
            ])
        );
    }

    #[test]
    fn quoted_paths_with_escapes_and_equals_signs() {
        let trace = parse("3 openat(AT_FDCWD,\"/a \\\"b\\\" = c\",O_RDONLY) = 3\n");
        assert_eq!(trace.paths, set(&["/a \"b\" = c"]));
        assert_eq!(normalize("/", "/a//b/./c/../d"), "/a/b/d");
        assert_eq!(normalize("/", "../.."), "/");
    }

    #[test]
    fn noise_is_ignored() {
        let trace = parse(
            "not a call\n\
             \n\
             99 --- SIGCHLD {si_signo=SIGCHLD} ---\n\
             99 write(1,0x5500,12) = 12\n\
             99 openat(AT_FDCWD,0x0,O_RDONLY) = -1 errno=14 (Bad address)\n",
        );
        assert!(trace.paths.is_empty());
        assert_eq!(trace.unreadable, 1);
    }
}
