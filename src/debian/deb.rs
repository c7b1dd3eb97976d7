//! Reading `.deb` files: the outer `ar` archive (`debian-binary`,
//! `control.tar*`, `data.tar*`), the control member (control file, maintainer
//! scripts, md5sums) and the data member as a tar stream decompressed on the
//! fly, so a package is never unpacked to disk.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Largest control-member file read into memory (control, md5sums). A real
/// md5sums file of a big package is a few megabytes.
const MAXIMUM_CONTROL_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Buffer size used between the `.deb` file and the decompressor.
const READ_BUFFER_SIZE: usize = 64 * 1024;

/// Maintainer scripts (and the declarative `triggers` file) dpkg would run or
/// process; xbuild never runs them and reports which ones were present.
pub const MAINTAINER_SCRIPTS: [&str; 6] = [
    "preinst", "postinst", "prerm", "postrm", "config", "triggers",
];

/// Everything that can go wrong while reading a `.deb`.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot open the package file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a Debian package: it is not an ar archive")]
    NotAnArArchive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a Debian package: {reason}")]
    NotADebianPackage { path: PathBuf, reason: String },
    #[error("{path} has no `{member}` member")]
    MissingMember { path: PathBuf, member: &'static str },
    #[error("{path}: member `{member}` uses a compression xbuild does not support")]
    UnsupportedCompression { path: PathBuf, member: String },
    #[error("cannot read member `{member}` of {path}")]
    ReadMember {
        path: PathBuf,
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the control member has no `control` file")]
    MissingControlFile { path: PathBuf },
    #[error(
        "{path}: control member file `{file}` is larger than {MAXIMUM_CONTROL_FILE_SIZE} bytes"
    )]
    ControlFileTooLarge { path: PathBuf, file: String },
    #[error("{path}: control member file `{file}` is not UTF-8 text")]
    NotText { path: PathBuf, file: String },
}

/// The parts of the control member xbuild uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebControl {
    /// The `control` file text (one deb822 paragraph).
    pub control: String,
    /// The maintainer scripts present, in [`MAINTAINER_SCRIPTS`] order.
    pub maintainer_scripts: Vec<String>,
    /// The `md5sums` file text, when the package has one.
    pub md5sums: Option<String>,
}

impl DebControl {
    /// The value of the `Package:` field, if the control text has one.
    pub fn package_name(&self) -> Option<&str> {
        self.field("Package")
    }

    /// The value of the single-line field `field` (`Version`,
    /// `Architecture`), if the control text has it.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.control.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case(field).then(|| value.trim())
        })
    }
}

/// Compression of a `control.tar*` or `data.tar*` member, from its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

/// One member of the outer ar archive that holds a tarball.
#[derive(Debug, Clone)]
struct TarMember {
    index: usize,
    name: String,
    compression: Compression,
}

/// An opened `.deb` file. Its members are located once at [`DebArchive::open`];
/// [`DebArchive::control`] and [`DebArchive::data`] stream them.
pub struct DebArchive {
    path: PathBuf,
    archive: ar::Archive<fs_err::File>,
    control_member: TarMember,
    data_member: TarMember,
}

impl std::fmt::Debug for DebArchive {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DebArchive")
            .field("path", &self.path)
            .field("control_member", &self.control_member.name)
            .field("data_member", &self.data_member.name)
            .finish()
    }
}

impl DebArchive {
    /// Opens a `.deb`, checks `debian-binary` and finds its control and data
    /// members.
    pub fn open(path: &Path) -> Result<DebArchive, DebError> {
        let file = fs_err::File::open(path).map_err(|source| DebError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut archive = ar::Archive::new(file);
        let count = archive
            .count_entries()
            .map_err(|source| DebError::NotAnArArchive {
                path: path.to_owned(),
                source,
            })?;
        let mut names = Vec::with_capacity(count);
        for index in 0..count {
            let entry =
                archive
                    .jump_to_entry(index)
                    .map_err(|source| DebError::NotAnArArchive {
                        path: path.to_owned(),
                        source,
                    })?;
            let identifier = String::from_utf8_lossy(entry.header().identifier());
            // GNU ar terminates names with `/`; dpkg does not, other tools may.
            names.push(identifier.trim_end_matches('/').trim_end().to_owned());
        }
        if names.first().map(String::as_str) != Some("debian-binary") {
            return Err(DebError::NotADebianPackage {
                path: path.to_owned(),
                reason: "the first member is not `debian-binary`".to_owned(),
            });
        }
        let mut version = Vec::new();
        archive
            .jump_to_entry(0)
            .and_then(|entry| entry.take(64).read_to_end(&mut version))
            .map_err(|source| DebError::ReadMember {
                path: path.to_owned(),
                member: "debian-binary".to_owned(),
                source,
            })?;
        if !version.starts_with(b"2.") {
            return Err(DebError::NotADebianPackage {
                path: path.to_owned(),
                reason: format!(
                    "unsupported format version `{}` in debian-binary",
                    String::from_utf8_lossy(&version).trim()
                ),
            });
        }
        let control_member = find_tar_member(path, &names, "control.tar")?;
        let data_member = find_tar_member(path, &names, "data.tar")?;
        Ok(DebArchive {
            path: path.to_owned(),
            archive,
            control_member,
            data_member,
        })
    }

    /// The path this archive was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the control member: the control file, which maintainer scripts
    /// exist, and md5sums.
    pub fn control(&mut self) -> Result<DebControl, DebError> {
        let path = self.path.clone();
        let member = self.control_member.clone();
        let mut tarball = open_tar_member(&mut self.archive, &path, &member)?;
        let read_error = |source: io::Error| DebError::ReadMember {
            path: path.clone(),
            member: member.name.clone(),
            source,
        };
        let mut control = None;
        let mut md5sums = None;
        let mut scripts = Vec::new();
        for entry in tarball.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let raw_name = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw_name);
            let name = name
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned();
            match name.as_str() {
                "control" | "md5sums" => {
                    if entry.size() > MAXIMUM_CONTROL_FILE_SIZE {
                        return Err(DebError::ControlFileTooLarge {
                            path: path.clone(),
                            file: name,
                        });
                    }
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry.read_to_end(&mut bytes).map_err(read_error)?;
                    let text = String::from_utf8(bytes).map_err(|_| DebError::NotText {
                        path: path.clone(),
                        file: name.clone(),
                    })?;
                    if name == "control" {
                        control = Some(text);
                    } else {
                        md5sums = Some(text);
                    }
                }
                script if MAINTAINER_SCRIPTS.contains(&script) => scripts.push(name),
                _ => {}
            }
        }
        let control = control.ok_or_else(|| DebError::MissingControlFile { path: path.clone() })?;
        scripts.sort_by_key(|name| MAINTAINER_SCRIPTS.iter().position(|known| known == name));
        Ok(DebControl {
            control,
            maintainer_scripts: scripts,
            md5sums,
        })
    }

    /// The files of the control member named in `names` (`postinst`,
    /// `config`…) that the package has, by name, each at most
    /// [`MAXIMUM_CONTROL_FILE_SIZE`] bytes.
    pub fn control_files(
        &mut self,
        names: &[&str],
    ) -> Result<std::collections::BTreeMap<String, Vec<u8>>, DebError> {
        let path = self.path.clone();
        let member = self.control_member.clone();
        let mut tarball = open_tar_member(&mut self.archive, &path, &member)?;
        let read_error = |source: io::Error| DebError::ReadMember {
            path: path.clone(),
            member: member.name.clone(),
            source,
        };
        let mut files = std::collections::BTreeMap::new();
        for entry in tarball.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let raw_name = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw_name);
            let name = name.trim_start_matches("./").trim_start_matches('/');
            if !names.contains(&name) {
                continue;
            }
            if entry.size() > MAXIMUM_CONTROL_FILE_SIZE {
                return Err(DebError::ControlFileTooLarge {
                    path: path.clone(),
                    file: name.to_owned(),
                });
            }
            let name = name.to_owned();
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(read_error)?;
            files.insert(name, bytes);
        }
        Ok(files)
    }

    /// The data member as a tar stream, decompressed while it is read.
    pub fn data(&mut self) -> Result<tar::Archive<Box<dyn Read + '_>>, DebError> {
        open_tar_member(&mut self.archive, &self.path, &self.data_member)
    }
}

fn open_tar_member<'a>(
    archive: &'a mut ar::Archive<fs_err::File>,
    path: &Path,
    member: &TarMember,
) -> Result<tar::Archive<Box<dyn Read + 'a>>, DebError> {
    let read_error = |source: io::Error| DebError::ReadMember {
        path: path.to_owned(),
        member: member.name.clone(),
        source,
    };
    let entry = archive.jump_to_entry(member.index).map_err(read_error)?;
    let buffered = BufReader::with_capacity(READ_BUFFER_SIZE, entry);
    let reader: Box<dyn Read + 'a> = match member.compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(buffered)),
        Compression::Zstd => Box::new(zstd_reader(buffered).map_err(read_error)?),
    };
    Ok(tar::Archive::new(reader))
}

fn zstd_reader<R: BufRead>(reader: R) -> io::Result<zstd::stream::read::Decoder<'static, R>> {
    zstd::stream::read::Decoder::with_buffer(reader)
}

fn find_tar_member(
    path: &Path,
    names: &[String],
    stem: &'static str,
) -> Result<TarMember, DebError> {
    let (index, name) = names
        .iter()
        .enumerate()
        .find(|(_, name)| name.starts_with(stem))
        .ok_or_else(|| DebError::MissingMember {
            path: path.to_owned(),
            member: stem,
        })?;
    let compression = match &name[stem.len()..] {
        "" => Compression::None,
        ".gz" => Compression::Gzip,
        ".xz" => Compression::Xz,
        ".zst" => Compression::Zstd,
        _ => {
            return Err(DebError::UnsupportedCompression {
                path: path.to_owned(),
                member: name.clone(),
            });
        }
    };
    Ok(TarMember {
        index,
        name: name.clone(),
        compression,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// A file to put in a test package: path under the package root, then
    /// what it is.
    pub(crate) enum TestFile<'a> {
        Regular(&'a str, &'a [u8]),
        Executable(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
    }

    /// Builds a real `.deb` with `dpkg-deb --build --root-owner-group` in
    /// `directory` and returns its path. `compression` is passed as `-Z`.
    pub(crate) fn build_test_deb(
        directory: &Path,
        package: &str,
        files: &[TestFile<'_>],
        scripts: &[(&str, &str)],
        md5sums: Option<&str>,
        compression: &str,
    ) -> PathBuf {
        let root = directory.join(format!("{package}-root"));
        fs_err::create_dir_all(root.join("DEBIAN")).unwrap();
        fs_err::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {package}\nVersion: 1.0-1\nArchitecture: arm64\nMaintainer: Test <test@example.org>\nDescription: test package {package}\n"
            ),
        )
        .unwrap();
        for (name, text) in scripts {
            let script = root.join("DEBIAN").join(name);
            fs_err::write(&script, text).unwrap();
            fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        if let Some(md5sums) = md5sums {
            fs_err::write(root.join("DEBIAN/md5sums"), md5sums).unwrap();
        }
        for file in files {
            let name = match file {
                TestFile::Regular(name, _)
                | TestFile::Executable(name, _)
                | TestFile::Symlink(name, _)
                | TestFile::HardLink(name, _) => root.join(name),
            };
            fs_err::create_dir_all(name.parent().unwrap()).unwrap();
            match file {
                TestFile::Regular(_, bytes) => {
                    fs_err::write(&name, bytes).unwrap();
                    fs_err::set_permissions(&name, std::fs::Permissions::from_mode(0o644)).unwrap();
                }
                TestFile::Executable(_, bytes) => {
                    fs_err::write(&name, bytes).unwrap();
                    fs_err::set_permissions(&name, std::fs::Permissions::from_mode(0o755)).unwrap();
                }
                TestFile::Symlink(_, target) => {
                    fs_err::os::unix::fs::symlink(target, &name).unwrap()
                }
                TestFile::HardLink(_, existing) => {
                    fs_err::hard_link(root.join(existing), &name).unwrap()
                }
            }
        }
        // Directories get a fixed mode so that the umask does not matter.
        let status = Command::new("chmod")
            .arg("-R")
            .arg("go-w")
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success());
        let deb = directory.join(format!("{package}_1.0-1_arm64.deb"));
        let output = Command::new("dpkg-deb")
            .arg("--root-owner-group")
            .arg(format!("-Z{compression}"))
            .arg("--build")
            .arg(&root)
            .arg(&deb)
            .output()
            .expect("dpkg-deb must be installed to run these tests");
        assert!(
            output.status.success(),
            "dpkg-deb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        deb
    }

    /// Writes an ar archive with the given members (name, bytes).
    pub(crate) fn write_ar(path: &Path, members: &[(&str, Vec<u8>)]) {
        let mut builder = ar::Builder::new(fs_err::File::create(path).unwrap());
        for (name, bytes) in members {
            let mut header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            header.set_mode(0o100644);
            builder.append(&header, &bytes[..]).unwrap();
        }
    }

    /// A gzip-compressed control tarball holding just `./control`.
    pub(crate) fn control_tar_gz(package: &str) -> Vec<u8> {
        let control = format!("Package: {package}\nVersion: 1\nArchitecture: all\n");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(control.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "./control", control.as_bytes())
            .unwrap();
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// Writes a `.deb` whose uncompressed data tarball holds `entries` (name,
    /// type, owner id, link target, contents), with names written raw so that the tar crate's own checks do not refuse them.
    pub(crate) fn write_deb_with_raw_data(
        path: &Path,
        package: &str,
        entries: &[(&str, tar::EntryType, u64, &str, &[u8])],
    ) {
        let mut data = tar::Builder::new(Vec::new());
        for (name, kind, uid, link, contents) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_uid(*uid);
            header.set_gid(*uid);
            header
                .set_username(if *uid == 0 { "root" } else { "someone" })
                .unwrap();
            header.set_mtime(12_345);
            header.set_size(contents.len() as u64);
            header.set_cksum();
            data.append(&header, *contents).unwrap();
        }
        let data = data.into_inner().unwrap();
        write_ar(
            path,
            &[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", control_tar_gz(package)),
                ("data.tar", data),
            ],
        );
    }

    fn data_paths(deb: &mut DebArchive) -> Vec<String> {
        let mut data = deb.data().unwrap();
        data.entries()
            .unwrap()
            .map(|entry| String::from_utf8_lossy(&entry.unwrap().path_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn reads_control_scripts_md5sums_and_data_for_every_compression() {
        let directory = tempfile::tempdir().unwrap();
        for compression in ["xz", "gzip", "zstd", "none"] {
            let package = format!("hello-{compression}");
            let deb = build_test_deb(
                directory.path(),
                &package,
                &[TestFile::Executable(
                    "usr/bin/hello",
                    b"#!/bin/sh\necho hi\n",
                )],
                &[
                    ("postinst", "#!/bin/sh\nexit 0\n"),
                    ("prerm", "#!/bin/sh\nexit 0\n"),
                ],
                Some("0123456789abcdef0123456789abcdef  usr/bin/hello\n"),
                compression,
            );
            let mut archive = DebArchive::open(&deb).unwrap();
            let control = archive.control().unwrap();
            assert_eq!(control.package_name(), Some(package.as_str()));
            assert!(control.control.contains("Version: 1.0-1\n"));
            assert_eq!(control.maintainer_scripts, ["postinst", "prerm"]);
            assert_eq!(
                control.md5sums.as_deref(),
                Some("0123456789abcdef0123456789abcdef  usr/bin/hello\n")
            );
            let paths = data_paths(&mut archive);
            assert!(
                paths.contains(&"./usr/bin/hello".to_owned()),
                "{compression}: {paths:?}"
            );
            // The data member can be read again after the control member.
            assert_eq!(data_paths(&mut archive), paths);
        }
    }

    #[test]
    fn a_file_that_is_not_an_ar_archive_is_refused_with_its_path() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("bogus.deb");
        fs_err::write(&path, b"this is not an archive at all, just text").unwrap();
        let error = DebArchive::open(&path).unwrap_err();
        assert!(matches!(error, DebError::NotAnArArchive { .. }), "{error}");
        assert!(error.to_string().contains("bogus.deb"));
    }

    #[test]
    fn missing_data_member_and_unknown_compression_are_named() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nodata.deb");
        write_ar(
            &path,
            &[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", control_tar_gz("x")),
            ],
        );
        let error = DebArchive::open(&path).unwrap_err();
        assert!(
            matches!(
                error,
                DebError::MissingMember {
                    member: "data.tar",
                    ..
                }
            ),
            "{error}"
        );

        let path = directory.path().join("bzip.deb");
        write_ar(
            &path,
            &[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", control_tar_gz("x")),
                ("data.tar.bz2", b"BZh".to_vec()),
            ],
        );
        let error = DebArchive::open(&path).unwrap_err();
        assert!(
            matches!(&error, DebError::UnsupportedCompression { member, .. } if member == "data.tar.bz2")
        );
        assert!(error.to_string().contains("bzip.deb"));
    }

    #[test]
    fn an_ar_archive_without_debian_binary_first_is_not_a_package() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("library.a");
        write_ar(&path, &[("object.o", b"\x7fELF".to_vec())]);
        let error = DebArchive::open(&path).unwrap_err();
        assert!(
            matches!(error, DebError::NotADebianPackage { .. }),
            "{error}"
        );
    }
}
