//! A client of one repository of an OCI registry (the distribution API):
//! what the `oci://` remote cache and `xbuild push` share. Requests go
//! through [`Transport`] (retries of 408/429/5xx honouring `Retry-After`)
//! and answer one authentication challenge each ([`Authenticator`]:
//! Basic, or the Bearer token flow, with Docker's credential lookup).
//!
//! Blobs: `HEAD` to check, a cross-repository mount
//! (`POST …/blobs/uploads/?mount=<digest>&from=<repo>`), a monolithic
//! upload (`POST`, then `PUT <location>?digest=`), or a chunked one
//! (`PATCH` with `Content-Range` per chunk, at least the registry's
//! `OCI-Chunk-Min-Length`, then the closing `PUT`). Manifests: `PUT` and
//! `GET`/`HEAD` by tag or digest with the exact media type.

use super::oci_auth::Authenticator;
use super::transport::{self, Transport};
use super::{BlobRef, DOCUMENT_LIMIT, Deadline, RemoteConfig, RemoteError, redact};
use crate::hash::Sha256Digest;
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::header;

/// The largest manifest read.
pub const MANIFEST_LIMIT: u64 = DOCUMENT_LIMIT;

/// One repository of a registry.
pub struct Registry {
    /// `http(s)://host:port/`.
    base: reqwest::Url,
    /// `host[:port]`, as credentials are looked up.
    authority: String,
    repository: String,
    /// `oci://host[:port]/repository`, for messages.
    shown: String,
    transport: Transport,
    auth: Authenticator,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("url", &self.shown)
            .finish()
    }
}

/// A manifest as a registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub digest: Sha256Digest,
}

/// How a blob got into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPut {
    /// It was there already.
    Present,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded (its bytes).
    Uploaded(u64),
}

impl Registry {
    /// The repository `oci://host[:port]/repository` names. Plain HTTP for
    /// `localhost`, `127.*` and `[::1]` (or when `plain` says so), HTTPS
    /// otherwise; `oci+http://` and `oci+https://` choose explicitly.
    pub fn open(url: &str, config: &RemoteConfig, plain: bool) -> Result<Registry, RemoteError> {
        Registry::open_with(url, config, plain, true)
    }

    /// [`Registry::open`]; `loopback_plain: false` keeps HTTPS for
    /// loopback hosts too (unless `plain`).
    pub fn open_with(
        url: &str,
        config: &RemoteConfig,
        plain: bool,
        loopback_plain: bool,
    ) -> Result<Registry, RemoteError> {
        let shown = redact(url).trim_end_matches('/').to_owned();
        let invalid = |reason: &str| RemoteError::InvalidUrl {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        let (authority, repository) = rest
            .trim_end_matches('/')
            .split_once('/')
            .ok_or_else(|| invalid("it names no repository (oci://host:port/repository)"))?;
        if authority.contains('@') {
            return Err(invalid(
                "credentials do not go in an oci:// URL; use `docker login` (~/.docker/config.json)",
            ));
        }
        check_repository(repository).map_err(invalid)?;
        let plain = match scheme {
            "oci+http" => true,
            "oci+https" => false,
            _ => plain || (loopback_plain && is_loopback(host_of(authority))),
        };
        let base = format!("{}://{authority}/", if plain { "http" } else { "https" });
        let base = reqwest::Url::parse(&base).map_err(|error| invalid(&error.to_string()))?;
        let transport = if plain {
            Transport::new(config).plain()
        } else {
            Transport::new(config)
        };
        Ok(Registry {
            base,
            authority: authority.to_owned(),
            repository: repository.to_owned(),
            shown,
            transport,
            auth: Authenticator::new(authority, config.credential_files()),
        })
    }

    /// `oci://host[:port]/repository`, redacted.
    pub fn url(&self) -> &str {
        &self.shown
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `http(s)://host:port/`.
    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// The URL of `/v2/<repo>/<path>`, and how to show it.
    pub(crate) fn endpoint(&self, path: &str) -> (reqwest::Url, String) {
        let url = self
            .base
            .join(&format!("v2/{}/{path}", self.repository))
            .expect("registry paths join");
        let shown = format!("{}/{path}", self.shown);
        (url, shown)
    }

    /// Sends a request, answering one authentication challenge if the
    /// registry asks.
    pub(crate) fn send(
        &self,
        method: &'static str,
        shown: &str,
        build: impl Fn(&Client) -> Result<RequestBuilder, RemoteError>,
    ) -> Result<Response, RemoteError> {
        self.send_within(method, shown, None, build)
    }

    /// [`Registry::send`] for a read: no attempt starts past `deadline`.
    fn send_within(
        &self,
        method: &'static str,
        shown: &str,
        deadline: Option<&Deadline>,
        build: impl Fn(&Client) -> Result<RequestBuilder, RemoteError>,
    ) -> Result<Response, RemoteError> {
        let sent = self.auth.current();
        let with = |authorization: Option<&str>| {
            self.transport
                .send_within(method, shown, deadline, |client| {
                    let request = build(client)?;
                    Ok(match authorization {
                        Some(value) => request.header(header::AUTHORIZATION, value),
                        None => request,
                    })
                })
        };
        let response = with(sent.as_deref())?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let authorization = self.auth.answer(
            &self.transport,
            shown,
            challenge.as_deref(),
            sent.as_deref(),
        )?;
        let response = with(Some(&authorization))?;
        if response.status().as_u16() == 401 {
            return Err(RemoteError::Auth {
                url: shown.to_owned(),
                reason: "the registry refused the token it issued (check the account's rights on the repository)".into(),
            });
        }
        Ok(response)
    }

    /// Whether the registry at `host[:port]` answers plain HTTP: one
    /// `GET /v2/` with no credentials on a plain connection (nothing
    /// secret is sent), read up to its status line. A TLS registry answers
    /// 400 or drops the connection; a plain one answers 200 or 401.
    pub fn speaks_plain_http(authority: &str, timeout: std::time::Duration) -> bool {
        use std::io::{Read as _, Write as _};
        use std::net::ToSocketAddrs as _;
        let Some(address) = authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .or_else(|| {
                (format!("{authority}:80").as_str())
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addresses| addresses.next())
            })
        else {
            return false;
        };
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, timeout) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        let request =
            format!("GET /v2/ HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        // The status line within `timeout` in all, however it trickles in.
        let start = std::time::Instant::now();
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < head.len() && start.elapsed() < timeout {
            match stream.read(&mut head[read..]) {
                Ok(0) | Err(_) => break,
                Ok(count) => read += count,
            }
        }
        let head = String::from_utf8_lossy(&head[..read]);
        let status = head
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse::<u16>().ok());
        matches!(status, Some(code) if code != 400)
    }

    /// Whether the repository has the blob.
    pub fn blob_exists(&self, digest: &Sha256Digest) -> Result<bool, RemoteError> {
        let (url, shown) = self.endpoint(&format!("blobs/{}", digest.oci()));
        let deadline = self.transport.document_deadline();
        let response = self.send_within("HEAD", &shown, Some(&deadline), |client| {
            Ok(client.head(url.clone()))
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(transport::status_error("HEAD", &shown, response)),
        }
    }

    /// Streams the blob into `sink` within the [`Deadline`] of its size;
    /// the bytes copied, `None` if absent. The caller checks what came.
    pub fn get_blob(
        &self,
        blob: &BlobRef,
        sink: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, RemoteError> {
        let (url, shown) = self.endpoint(&format!("blobs/{}", blob.digest.oci()));
        let deadline = self.transport.deadline_for(blob.size);
        let response = self.send_within("GET", &shown, Some(&deadline), |client| {
            Ok(client.get(url.clone()))
        })?;
        match response.status().as_u16() {
            200..=299 => {
                transport::copy_body(&self.transport, response, &shown, sink, &deadline).map(Some)
            }
            404 => Ok(None),
            _ => Err(transport::status_error("GET", &shown, response)),
        }
    }

    /// A small blob (a config, an envelope) read whole: at most the size
    /// its descriptor declares (a registry sending more is cut off), within
    /// the [`Deadline`] of that size, and checked against its digest.
    /// `None` if absent.
    pub fn get_blob_bytes(&self, blob: &BlobRef) -> Result<Option<Vec<u8>>, RemoteError> {
        let (_, shown) = self.endpoint(&format!("blobs/{}", blob.digest.oci()));
        let mut sink = transport::LimitedSink {
            bytes: Vec::new(),
            limit: blob.size,
            over: false,
        };
        match self.get_blob(blob, &mut sink) {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(_) if sink.over => {
                return Err(RemoteError::TooLarge {
                    url: shown,
                    limit: blob.size,
                    what: "its descriptor declares",
                });
            }
            Err(error) => return Err(error),
        }
        let actual = Sha256Digest::of(&sink.bytes);
        if actual != blob.digest {
            return Err(RemoteError::Protocol {
                url: shown,
                reason: format!(
                    "it holds other content: {} bytes hashing to {actual:?}",
                    sink.bytes.len()
                ),
            });
        }
        Ok(Some(sink.bytes))
    }

    /// Starts an upload session; with `mount`, first asks the registry to
    /// mount the blob from another of its repositories. `Ok(None)`: the
    /// mount succeeded (no session needed). Otherwise the session's URL
    /// and the registry's `OCI-Chunk-Min-Length`, if it gave one.
    fn start_upload(
        &self,
        mount: Option<(&Sha256Digest, &str)>,
    ) -> Result<Option<(reqwest::Url, Option<u64>)>, RemoteError> {
        let (mut start, shown) = self.endpoint("blobs/uploads/");
        if let Some((digest, from)) = mount {
            start
                .query_pairs_mut()
                .append_pair("mount", &digest.oci())
                .append_pair("from", from);
        }
        let response = self.send("POST", &shown, |client| {
            Ok(client
                .post(start.clone())
                .header(header::CONTENT_LENGTH, "0"))
        })?;
        match response.status().as_u16() {
            201 if mount.is_some() => return Ok(None),
            202 => {}
            _ => return Err(transport::status_error("POST", &shown, response)),
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| RemoteError::Protocol {
                url: shown.clone(),
                reason: "the upload was accepted without a Location".into(),
            })?;
        let session = start
            .join(location)
            .map_err(|error| RemoteError::Protocol {
                url: shown.clone(),
                reason: format!("the upload Location `{location}` is not a URL: {error}"),
            })?;
        let min_chunk = response
            .headers()
            .get("OCI-Chunk-Min-Length")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok());
        Ok(Some((session, min_chunk)))
    }

    /// The session URL a response names in `Location`, joined to `base`.
    fn next_location(
        base: &reqwest::Url,
        response: &Response,
        shown: &str,
    ) -> Result<reqwest::Url, RemoteError> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| RemoteError::Protocol {
                url: shown.to_owned(),
                reason: "a chunk was accepted without a Location for the next".into(),
            })?;
        base.join(location).map_err(|error| RemoteError::Protocol {
            url: shown.to_owned(),
            reason: format!("the upload Location `{location}` is not a URL: {error}"),
        })
    }

    /// Closes an upload session with `PUT ?digest=` and the last bytes.
    fn finish_upload(
        &self,
        mut session: reqwest::Url,
        blob: &BlobRef,
        body: impl Fn() -> Result<Body, RemoteError>,
        size: u64,
    ) -> Result<(), RemoteError> {
        session
            .query_pairs_mut()
            .append_pair("digest", &blob.digest.oci());
        let (_, shown) = self.endpoint(&format!("blobs/uploads/… ({})", blob.digest.oci()));
        let response = self.send("PUT", &shown, |client| {
            Ok(client
                .put(session.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, size.to_string())
                .timeout(self.transport.upload_timeout(size))
                .body(body()?))
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(transport::status_error("PUT", &shown, response)),
        }
    }

    /// Uploads a blob in one request (`body` is made again for a retry).
    pub fn upload(
        &self,
        blob: &BlobRef,
        body: impl Fn() -> Result<Body, RemoteError>,
    ) -> Result<(), RemoteError> {
        let (session, _) = self
            .start_upload(None)?
            .expect("an upload without a mount always opens a session");
        self.finish_upload(session, blob, body, blob.size)
    }

    /// Uploads small bytes unless the repository has them; their blob.
    pub fn upload_bytes(&self, bytes: &[u8]) -> Result<BlobRef, RemoteError> {
        let blob = BlobRef::new(Sha256Digest::of(bytes), bytes.len() as u64);
        if !self.blob_exists(&blob.digest)? {
            self.upload(&blob, || Ok(Body::from(bytes.to_vec())))?;
        }
        Ok(blob)
    }

    /// Puts the blob into the repository the cheapest way: nothing if it
    /// is there; a mount from `mount_from` (another repository of this
    /// registry that has it); else an upload of `read(offset, length)` —
    /// in one request up to `chunk` bytes, in chunks of `chunk` (at least
    /// the registry's minimum) beyond.
    pub fn put_blob(
        &self,
        blob: &BlobRef,
        mount_from: Option<&str>,
        chunk: u64,
        read: &(dyn Fn(u64, u64) -> Result<Body, RemoteError> + Sync),
    ) -> Result<BlobPut, RemoteError> {
        if self.blob_exists(&blob.digest)? {
            return Ok(BlobPut::Present);
        }
        let mount = mount_from
            .filter(|from| *from != self.repository)
            .map(|from| (&blob.digest, from));
        let Some((session, min_chunk)) = self.start_upload(mount)? else {
            return Ok(BlobPut::Mounted);
        };
        let chunk = chunk.max(min_chunk.unwrap_or(0)).max(1);
        if blob.size <= chunk {
            self.finish_upload(session, blob, || read(0, blob.size), blob.size)?;
            return Ok(BlobPut::Uploaded(blob.size));
        }
        let mut session = session;
        let mut offset = 0;
        // Every chunk but the last goes by PATCH; the last with the PUT.
        while blob.size - offset > chunk {
            let (_, shown) = self.endpoint(&format!("blobs/uploads/… ({})", blob.digest.oci()));
            let end = offset + chunk - 1;
            let url = session.clone();
            let response = self.send("PATCH", &shown, |client| {
                Ok(client
                    .patch(url.clone())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_RANGE, format!("{offset}-{end}"))
                    .header(header::CONTENT_LENGTH, chunk.to_string())
                    .timeout(self.transport.upload_timeout(chunk))
                    .body(read(offset, chunk)?))
            })?;
            if response.status().as_u16() != 202 {
                return Err(transport::status_error("PATCH", &shown, response));
            }
            session = Self::next_location(&session, &response, &shown)?;
            offset += chunk;
        }
        let rest = blob.size - offset;
        self.finish_upload(session, blob, || read(offset, rest), rest)?;
        Ok(BlobPut::Uploaded(blob.size))
    }

    /// Writes a manifest (or index) under `reference` (a tag or its
    /// digest) with its exact media type; returns its digest.
    pub fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Sha256Digest, RemoteError> {
        let (url, shown) = self.endpoint(&format!("manifests/{reference}"));
        let response = self.send("PUT", &shown, |client| {
            Ok(client
                .put(url.clone())
                .header(header::CONTENT_TYPE, media_type)
                .body(bytes.to_vec()))
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(Sha256Digest::of(bytes)),
            _ => Err(transport::status_error("PUT", &shown, response)),
        }
    }

    /// The manifest `reference` (a tag or digest) of one of the `accept`ed
    /// media types, if the repository has it. One served by digest must
    /// hash to it.
    pub fn get_manifest(
        &self,
        reference: &str,
        accept: &[&str],
    ) -> Result<Option<RawManifest>, RemoteError> {
        let (url, shown) = self.endpoint(&format!("manifests/{reference}"));
        let deadline = self.transport.document_deadline();
        let response = self.send_within("GET", &shown, Some(&deadline), |client| {
            Ok(client
                .get(url.clone())
                .header(header::ACCEPT, accept.join(", ")))
        })?;
        match response.status().as_u16() {
            200..=299 => {}
            404 => return Ok(None),
            _ => return Err(transport::status_error("GET", &shown, response)),
        }
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let bytes = transport::read_small(
            &self.transport,
            response,
            &shown,
            MANIFEST_LIMIT,
            "a manifest may hold",
            &deadline,
        )?;
        let digest = Sha256Digest::of(&bytes);
        if let Some(expected) = reference.strip_prefix("sha256:")
            && digest.hex() != expected
        {
            return Err(RemoteError::Protocol {
                url: shown,
                reason: format!("the manifest served hashes to {digest:?}"),
            });
        }
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest,
        }))
    }

    /// Whether the manifest `reference` is there (`HEAD`), accepting
    /// `accept`.
    pub fn manifest_exists(&self, reference: &str, accept: &[&str]) -> Result<bool, RemoteError> {
        let (url, shown) = self.endpoint(&format!("manifests/{reference}"));
        let deadline = self.transport.document_deadline();
        let response = self.send_within("HEAD", &shown, Some(&deadline), |client| {
            Ok(client
                .head(url.clone())
                .header(header::ACCEPT, accept.join(", ")))
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(transport::status_error("HEAD", &shown, response)),
        }
    }
}

fn host_of(authority: &str) -> &str {
    authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|byte| byte.is_ascii_digit()))
        .map_or(authority, |(host, _)| host)
}

/// Whether `authority` (`host[:port]`) is this machine.
pub fn is_loopback_authority(authority: &str) -> bool {
    is_loopback(host_of(authority))
}

pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The repository name grammar: components of `[a-z0-9]+([._-][a-z0-9]+)*`
/// joined by `/`.
pub fn check_repository(repository: &str) -> Result<(), &'static str> {
    let component_ok = |component: &str| {
        !component.is_empty()
            && component.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte)
            })
            && component.as_bytes()[0].is_ascii_alphanumeric()
            && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric()
    };
    if repository.is_empty() || !repository.split('/').all(component_ok) {
        return Err(
            "the repository must be lowercase components of a-z, 0-9, `.`, `_`, `-` joined by `/`",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_plain_http_for_loopback_only() {
        let config = RemoteConfig::default();
        let local = Registry::open("oci://127.0.0.1:5000/team/xbuild", &config, false).unwrap();
        assert_eq!(local.base.as_str(), "http://127.0.0.1:5000/");
        assert_eq!(local.repository, "team/xbuild");
        let forced = Registry::open("oci+https://127.0.0.1:5000/cache", &config, false).unwrap();
        assert_eq!(forced.base.as_str(), "https://127.0.0.1:5000/");
        let named = Registry::open("oci://registry.test:5000/cache", &config, true).unwrap();
        assert_eq!(named.base.as_str(), "http://registry.test:5000/");
        let remote = Registry::open("oci://registry.test/cache", &config, false).unwrap();
        assert_eq!(remote.base.as_str(), "https://registry.test/");
        assert!(is_loopback("localhost") && is_loopback("127.0.0.2") && is_loopback("[::1]"));
        assert!(!is_loopback("192.0.2.10"));
        let error = Registry::open("oci://127.0.0.1:5000/Team", &config, false).unwrap_err();
        assert!(error.to_string().contains("lowercase"), "{error}");
        let error = Registry::open("oci://127.0.0.1:5000", &config, false).unwrap_err();
        assert!(error.to_string().contains("no repository"), "{error}");
    }
}
