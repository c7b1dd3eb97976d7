//! `http(s)://host/prefix`: any web server that answers GET and HEAD and
//! accepts PUT (nginx's WebDAV module with `dav_methods PUT;
//! create_full_put_path on;`, Apache's mod_dav, an object store gateway).
//!
//! The paths under the prefix are the layout [`super`] describes. HEAD
//! asks whether a blob or entry exists, GET reads it, PUT writes it; 404
//! means absent, and any other failure is an error. Blobs go up in one PUT
//! each, with their length, so a server that writes to a temp file and
//! renames on completion (nginx does) never shows a partial blob.
//!
//! Credentials, first found wins: a user and password in the URL; a bearer
//! token (`XBUILD_REMOTE_TOKEN`, [`super::RemoteConfig::token`]); the
//! `machine` (else `default`) entry of the netrc file (`$NETRC`, else
//! `~/.netrc`) for the URL's host, sent as Basic authentication. None of
//! them is ever printed.

use super::transport::{self, Transport};
use super::{
    Backend, BlobRef, DOCUMENT_LIMIT, LocalBlob, RemoteConfig, RemoteError, check_bucket,
    check_pointer, parallel_map, redact,
};
use crate::hash::Sha256Digest;
use base64::Engine as _;
use std::io::Write;
use std::path::Path;

/// A remote cache behind a WebDAV-capable web server.
pub struct HttpBackend {
    /// The prefix, without credentials, ending in `/`.
    base: reqwest::Url,
    shown: String,
    authorization: Option<String>,
    transport: Transport,
    check_jobs: usize,
}

impl std::fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBackend")
            .field("url", &self.shown)
            .field("authenticated", &self.authorization.is_some())
            .finish()
    }
}

impl HttpBackend {
    pub fn open(url: &str, config: &RemoteConfig) -> Result<HttpBackend, RemoteError> {
        let shown = redact(url).trim_end_matches('/').to_owned();
        let invalid = |reason: String| RemoteError::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        let mut base = reqwest::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("not an http:// or https:// URL".into()));
        }
        let Some(host) = base.host_str().map(str::to_owned) else {
            return Err(invalid("it names no host".into()));
        };
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a remote URL takes no query or fragment".into()));
        }
        let from_url = (!base.username().is_empty()).then(|| {
            let user = percent_decode(base.username());
            let password = base.password().map(percent_decode).unwrap_or_default();
            basic(&user, &password)
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let authorization = match (from_url, &config.token) {
            (Some(basic), _) => Some(basic),
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => match &config.netrc {
                Some(path) => {
                    netrc_login(path, &host)?.map(|(user, password)| basic(&user, &password))
                }
                None => None,
            },
        };
        Ok(HttpBackend {
            base,
            shown,
            authorization,
            transport: Transport::new(config),
            check_jobs: config.check_jobs,
        })
    }

    fn location(&self, path: &str) -> (reqwest::Url, String) {
        let url = self.base.join(path).expect("relative paths join");
        (url, format!("{}/{path}", self.shown))
    }

    fn request(
        &self,
        client: &reqwest::blocking::Client,
        method: reqwest::Method,
        url: &reqwest::Url,
    ) -> reqwest::blocking::RequestBuilder {
        let builder = client.request(method, url.clone());
        match &self.authorization {
            Some(value) => builder.header(reqwest::header::AUTHORIZATION, value),
            None => builder,
        }
    }

    fn exists(&self, path: &str) -> Result<bool, RemoteError> {
        let (url, shown) = self.location(path);
        let deadline = self.transport.document_deadline();
        let response = self
            .transport
            .send_within("HEAD", &shown, Some(&deadline), |client| {
                Ok(self.request(client, reqwest::Method::HEAD, &url))
            })?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 | 410 => Ok(false),
            _ => Err(transport::status_error("HEAD", &shown, response)),
        }
    }

    fn get_small(&self, path: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let (url, shown) = self.location(path);
        let deadline = self.transport.document_deadline();
        let response = self
            .transport
            .send_within("GET", &shown, Some(&deadline), |client| {
                Ok(self.request(client, reqwest::Method::GET, &url))
            })?;
        match response.status().as_u16() {
            200..=299 => transport::read_small(
                &self.transport,
                response,
                &shown,
                DOCUMENT_LIMIT,
                "a signed document may hold",
                &deadline,
            )
            .map(Some),
            404 | 410 => Ok(None),
            _ => Err(transport::status_error("GET", &shown, response)),
        }
    }

    fn put_small(&self, path: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        let (url, shown) = self.location(path);
        let response = self.transport.send("PUT", &shown, |client| {
            Ok(self
                .request(client, reqwest::Method::PUT, &url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.to_vec()))
        })?;
        expect_written(response, &shown)
    }
}

fn expect_written(response: reqwest::blocking::Response, shown: &str) -> Result<(), RemoteError> {
    match response.status().as_u16() {
        200..=299 => Ok(()),
        _ => Err(transport::status_error("PUT", shown, response)),
    }
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn blob_path(digest: &Sha256Digest) -> String {
    format!("blobs-v1/sha256/{}", digest.hex())
}

fn entry_path(bucket: &str, key: &Sha256Digest) -> Result<String, RemoteError> {
    check_bucket(bucket)?;
    Ok(format!("entries-v1/{bucket}/{}", key.hex()))
}

fn pointer_path(name: &str) -> Result<String, RemoteError> {
    check_pointer(name)?;
    Ok(format!("pointers-v1/{name}"))
}

impl Backend for HttpBackend {
    fn url(&self) -> &str {
        &self.shown
    }

    fn has_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<bool>, RemoteError> {
        parallel_map(self.check_jobs, digests, |digest| {
            self.exists(&blob_path(digest))
        })
        .into_iter()
        .collect()
    }

    fn get_blob(&self, blob: &BlobRef, sink: &mut dyn Write) -> Result<Option<u64>, RemoteError> {
        let (url, shown) = self.location(&blob_path(&blob.digest));
        let deadline = self.transport.deadline_for(blob.size);
        let response = self
            .transport
            .send_within("GET", &shown, Some(&deadline), |client| {
                Ok(self.request(client, reqwest::Method::GET, &url))
            })?;
        match response.status().as_u16() {
            200..=299 => {
                transport::copy_body(&self.transport, response, &shown, sink, &deadline).map(Some)
            }
            404 | 410 => Ok(None),
            _ => Err(transport::status_error("GET", &shown, response)),
        }
    }

    fn put_blob(&self, blob: &BlobRef, path: &Path) -> Result<(), RemoteError> {
        let (url, shown) = self.location(&blob_path(&blob.digest));
        let local = LocalBlob::new(blob, path);
        let sent = self.transport.send("PUT", &shown, |client| {
            let reader = local.open()?;
            Ok(self
                .request(client, reqwest::Method::PUT, &url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .timeout(self.transport.upload_timeout(blob.size))
                .body(reqwest::blocking::Body::sized(reader, blob.size)))
        });
        local.check()?;
        expect_written(sent?, &shown)
    }

    fn get_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<Option<Vec<u8>>, RemoteError> {
        self.get_small(&entry_path(bucket, key)?)
    }

    fn has_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<bool, RemoteError> {
        self.exists(&entry_path(bucket, key)?)
    }

    fn put_entry(
        &self,
        bucket: &str,
        key: &Sha256Digest,
        envelope: &[u8],
        _blobs: &[BlobRef],
    ) -> Result<(), RemoteError> {
        self.put_small(&entry_path(bucket, key)?, envelope)
    }

    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.get_small(&pointer_path(name)?)
    }

    fn put_pointer(&self, name: &str, document: &[u8]) -> Result<(), RemoteError> {
        self.put_small(&pointer_path(name)?, document)
    }
}

/// The login and password the netrc file at `path` gives for `host`: its
/// `machine <host>` entry, else its `default` entry. A missing file gives
/// none; `macdef` blocks are skipped.
pub fn netrc_login(path: &Path, host: &str) -> Result<Option<(String, String)>, RemoteError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(RemoteError::Credentials {
                path: path.to_owned(),
                reason: error.to_string(),
            });
        }
    };
    let mut found: Option<(String, String)> = None;
    let mut default: Option<(String, String)> = None;
    // Which entry the tokens being read belong to: Some(true) = the host's,
    // Some(false) = another machine's, None = the default entry.
    let mut current: Option<Option<bool>> = None;
    let mut login = String::new();
    let mut password = String::new();
    let mut tokens = NetrcTokens::new(&text);
    let mut finish = |current: Option<Option<bool>>, login: &mut String, password: &mut String| {
        let pair = (std::mem::take(login), std::mem::take(password));
        match current {
            Some(Some(true)) if found.is_none() => found = Some(pair),
            Some(None) if default.is_none() => default = Some(pair),
            _ => {}
        }
    };
    while let Some(token) = tokens.next_token() {
        match token.as_str() {
            "machine" => {
                finish(current, &mut login, &mut password);
                let machine = tokens.next_token().unwrap_or_default();
                current = Some(Some(machine.eq_ignore_ascii_case(host)));
            }
            "default" => {
                finish(current, &mut login, &mut password);
                current = Some(None);
            }
            "login" => login = tokens.next_token().unwrap_or_default(),
            "password" => password = tokens.next_token().unwrap_or_default(),
            "account" | "port" => {
                tokens.next_token();
            }
            "macdef" => tokens.skip_macro(),
            _ => {}
        }
    }
    finish(current, &mut login, &mut password);
    Ok(found.or(default).filter(|(login, _)| !login.is_empty()))
}

/// Whitespace-separated tokens; `"quoted strings"` with `\` escapes.
struct NetrcTokens<'a> {
    rest: &'a str,
}

impl<'a> NetrcTokens<'a> {
    fn new(text: &'a str) -> Self {
        NetrcTokens { rest: text }
    }

    fn next_token(&mut self) -> Option<String> {
        self.rest = self.rest.trim_start();
        // A comment runs to the end of its line.
        while self.rest.starts_with('#') {
            self.rest = self.rest.find('\n').map_or("", |end| &self.rest[end..]);
            self.rest = self.rest.trim_start();
        }
        if self.rest.is_empty() {
            return None;
        }
        let mut token = String::new();
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((index, char)) = chars.next() {
                match char {
                    '"' => {
                        end = index + 1;
                        break;
                    }
                    '\\' => token.extend(chars.next().map(|(_, escaped)| escaped)),
                    other => token.push(other),
                }
            }
            self.rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = self
                .rest
                .find(char::is_whitespace)
                .unwrap_or(self.rest.len());
            token.push_str(&self.rest[..end]);
            self.rest = &self.rest[end..];
        }
        Some(token)
    }

    /// Skips a macro definition: the rest of its line and every line up
    /// to the first empty one.
    fn skip_macro(&mut self) {
        match self.rest.find("\n\n") {
            Some(end) => self.rest = &self.rest[end + 2..],
            None => self.rest = "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netrc(text: &str, host: &str) -> Option<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netrc");
        std::fs::write(&path, text).unwrap();
        netrc_login(&path, host).unwrap()
    }

    #[test]
    fn netrc_entries_are_found_by_host_then_default() {
        let text = "# team cache\nmachine 127.0.0.1 login ci password \"p a\\\"ss\"\n\
                    macdef init\ncd /\nmachine 127.0.0.1 login evil password x\n\n\
                    machine other login o password p\ndefault login anon password guest\n";
        assert_eq!(
            netrc(text, "127.0.0.1"),
            Some(("ci".into(), "p a\"ss".into()))
        );
        assert_eq!(netrc(text, "other"), Some(("o".into(), "p".into())));
        assert_eq!(
            netrc(text, "localhost"),
            Some(("anon".into(), "guest".into()))
        );
        assert_eq!(netrc("machine a login b password c", "z"), None);
        let missing = netrc_login(Path::new("/nonexistent/netrc"), "a").unwrap();
        assert_eq!(missing, None);
    }

    #[test]
    fn credentials_in_the_url_are_used_and_never_shown() {
        let backend = HttpBackend::open(
            "http://ci:s%40cret@127.0.0.1:9/xb",
            &RemoteConfig::default(),
        )
        .unwrap();
        assert_eq!(backend.url(), "http://***@127.0.0.1:9/xb");
        assert_eq!(
            backend.authorization.as_deref(),
            Some(basic("ci", "s@cret").as_str())
        );
        assert!(!format!("{backend:?}").contains("cret"));
        assert_eq!(backend.base.as_str(), "http://127.0.0.1:9/xb/");
    }

    #[test]
    fn a_token_is_sent_as_bearer() {
        let config = RemoteConfig::default().with_token("t0ken");
        let backend = HttpBackend::open("https://127.0.0.1/xb/", &config).unwrap();
        assert_eq!(backend.authorization.as_deref(), Some("Bearer t0ken"));
        assert_eq!(backend.url(), "https://127.0.0.1/xb");
    }
}
