//! Chunked blob uploads against a minimal registry written here (Debian's
//! registry sends no `OCI-Chunk-Min-Length`): every `PATCH` carries at
//! least the minimum the upload session announced, the ranges are
//! contiguous, and the closing `PUT` completes a blob whose bytes hash to
//! its digest.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use xbuild_cache::backend::registry::{BlobPut, Registry};
use xbuild_cache::backend::{BlobRef, RemoteConfig};
use xbuild_cache::hash::Sha256Digest;

#[derive(Default)]
struct Seen {
    /// (Content-Range, body length) of each PATCH.
    patches: Vec<(String, usize)>,
    received: Vec<u8>,
    completed: Option<String>,
}

/// Serves HEAD (404), POST (202 with a Location and the minimum chunk),
/// PATCH (202, appending) and PUT (201 once the bytes match the digest).
fn serve(min_chunk: usize) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let state = state.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    let mut range = String::new();
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(value) = lower.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap();
                        }
                        if let Some(value) = lower.strip_prefix("content-range:") {
                            range = value.trim().to_owned();
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    let method = request.split(' ').next().unwrap().to_owned();
                    let target = request.split(' ').nth(1).unwrap().to_owned();
                    let mut seen = state.lock().unwrap();
                    let answer = match method.as_str() {
                        "HEAD" => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_owned(),
                        "POST" => format!(
                            "HTTP/1.1 202 Accepted\r\nlocation: /v2/team/app/blobs/uploads/s1\r\noci-chunk-min-length: {min_chunk}\r\ncontent-length: 0\r\n\r\n"
                        ),
                        "PATCH" => {
                            seen.patches.push((range, body.len()));
                            seen.received.extend_from_slice(&body);
                            let next = seen.patches.len() + 1;
                            format!(
                                "HTTP/1.1 202 Accepted\r\nlocation: /v2/team/app/blobs/uploads/s{next}\r\ncontent-length: 0\r\n\r\n"
                            )
                        }
                        "PUT" => {
                            seen.received.extend_from_slice(&body);
                            let digest = Sha256Digest::of(&seen.received).oci();
                            if target.contains(&digest.replace(':', "%3A")) {
                                seen.completed = Some(digest);
                                "HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n".to_owned()
                            } else {
                                "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n".to_owned()
                            }
                        }
                        _ => "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n"
                            .to_owned(),
                    };
                    drop(seen);
                    writer.write_all(answer.as_bytes()).unwrap();
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn chunks_are_at_least_the_registry_minimum_and_the_blob_completes() {
    let (port, seen) = serve(10_000);
    let registry = Registry::open(
        &format!("oci://127.0.0.1:{port}/team/app"),
        &RemoteConfig::default(),
        false,
    )
    .unwrap();
    let bytes: Vec<u8> = (0..50_000u32).map(|index| (index % 251) as u8).collect();
    let blob = BlobRef::new(Sha256Digest::of(&bytes), bytes.len() as u64);
    let read = |offset: u64, length: u64| {
        let slice = bytes[offset as usize..(offset + length) as usize].to_vec();
        Ok(reqwest::blocking::Body::from(slice))
    };
    // Asked for 4 KiB chunks; the registry wants at least 10,000 bytes.
    let put = registry.put_blob(&blob, None, 4096, &read).unwrap();
    assert_eq!(put, BlobPut::Uploaded(50_000));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.completed.as_deref(), Some(blob.digest.oci().as_str()));
    assert_eq!(seen.received, bytes);
    assert!(!seen.patches.is_empty());
    let mut offset = 0;
    for (range, length) in &seen.patches {
        assert!(*length >= 10_000, "a chunk of {length} bytes");
        assert_eq!(range, &format!("{offset}-{}", offset + length - 1));
        offset += length;
    }
}
