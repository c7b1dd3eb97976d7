//! Registry authentication: where the credentials come from, and the
//! challenge a registry answers 401 with.
//!
//! Credentials for a registry `host[:port]` are looked up as Docker does,
//! in `config.json` of the Docker configuration directory (`$DOCKER_CONFIG`,
//! else `~/.docker`): the registry's `credHelpers` entry, else its `auths`
//! entry (`auth`, base64 of `user:password`, or an `identitytoken`), else
//! the `credsStore`. A helper is the program `docker-credential-<name>`,
//! run with `get` and the registry on stdin; it answers JSON `{Username,
//! Secret}` (a user name `<token>` makes the secret an identity token) or
//! "credentials not found", which means anonymous.
//!
//! A request goes out with the last authorization that worked (none at
//! first). On a 401 the `WWW-Authenticate` challenge says what to do:
//! `Basic` → the user and password; `Bearer realm=…,service=…,scope=…` →
//! ask the realm for a token for that scope (with the user and password,
//! or the identity token as a refresh token, or anonymously) and send it as
//! `Bearer`. The request is retried once with the new authorization.

use super::RemoteError;
use super::transport::{self, Transport};
use base64::Engine as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// What the configuration gives for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Login {
    Password { user: String, password: String },
    IdentityToken(String),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Password { user, .. } => write!(f, "Password {{ user: {user:?}, .. }}"),
            Login::IdentityToken(_) => f.write_str("IdentityToken(..)"),
        }
    }
}

/// The credentials `config.json` in `config_dir` gives for `registry`
/// (`host[:port]`). No file, or no entry, is anonymous.
#[cfg(test)]
pub(crate) fn docker_login(
    config_dir: &Path,
    registry: &str,
) -> Result<Option<Login>, RemoteError> {
    file_login(&config_dir.join("config.json"), registry)
}

/// The credentials the auth file at `path` (docker's `config.json`, or
/// podman's `auth.json`, which has the same `auths`) gives for `registry`.
pub(crate) fn file_login(path: &Path, registry: &str) -> Result<Option<Login>, RemoteError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        #[serde(default)]
        auths: std::collections::BTreeMap<String, AuthEntry>,
        #[serde(default)]
        cred_helpers: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        creds_store: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    struct AuthEntry {
        #[serde(default)]
        auth: Option<String>,
        #[serde(default)]
        identitytoken: Option<String>,
    }
    let path = path.to_owned();
    let bad = |reason: String| RemoteError::Credentials {
        path: path.clone(),
        reason,
    };
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(bad(error.to_string())),
    };
    let config: Config = serde_json::from_slice(&text).map_err(|error| bad(error.to_string()))?;
    let matches = |key: &str| normalise_registry(key) == registry;
    if let Some((_, helper)) = config.cred_helpers.iter().find(|(key, _)| matches(key)) {
        return run_helper(&format!("docker-credential-{helper}"), registry, &path);
    }
    if let Some((_, entry)) = config.auths.iter().find(|(key, _)| matches(key)) {
        if let Some(token) = entry
            .identitytoken
            .as_ref()
            .filter(|token| !token.is_empty())
        {
            return Ok(Some(Login::IdentityToken(token.clone())));
        }
        if let Some(auth) = entry.auth.as_ref().filter(|auth| !auth.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad(format!("the `auth` of {registry} is not base64")))?;
            let decoded = String::from_utf8_lossy(&decoded).into_owned();
            let Some((user, password)) = decoded.split_once(':') else {
                return Err(bad(format!(
                    "the `auth` of {registry} is not `user:password`"
                )));
            };
            return Ok(Some(Login::Password {
                user: user.to_owned(),
                password: password.to_owned(),
            }));
        }
    }
    match config.creds_store.filter(|store| !store.is_empty()) {
        Some(store) => run_helper(&format!("docker-credential-{store}"), registry, &path),
        None => Ok(None),
    }
}

/// `https://host:port/v1/` → `host:port`, as `auths` keys are written.
fn normalise_registry(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Runs a credential helper's `get` for `registry`.
pub(crate) fn run_helper(
    program: &str,
    registry: &str,
    config: &Path,
) -> Result<Option<Login>, RemoteError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let failed = |reason: String| RemoteError::Credentials {
        path: PathBuf::from(config),
        reason: format!("the credential helper `{program}` {reason}"),
    };
    let mut child = std::process::Command::new(program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| failed(format!("could not be run: {error}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|error| failed(format!("failed: {error}")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        if said.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        let said = said.lines().next().unwrap_or_default().trim().to_owned();
        return Err(failed(format!("exited with {}: {said}", output.status)));
    }
    let answer: Answer = serde_json::from_slice(&output.stdout)
        .map_err(|error| failed(format!("answered something that is not its JSON: {error}")))?;
    Ok(Some(if answer.username == "<token>" {
        Login::IdentityToken(answer.secret)
    } else {
        Login::Password {
            user: answer.username,
            password: answer.secret,
        }
    }))
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub parameters: Vec<(String, String)>,
}

impl Challenge {
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut parameters = Vec::new();
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            let Some((name, after)) = rest.split_once('=') else {
                break;
            };
            let (value, after) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"')?;
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => {
                    let end = after.find(',').unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            parameters.push((name.trim().to_ascii_lowercase(), value.to_owned()));
            rest = after;
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            parameters,
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The authorization state of one registry.
pub(crate) struct Authenticator {
    registry: String,
    /// Where credentials are looked for, in order.
    files: Vec<PathBuf>,
    login: OnceLock<Result<Option<Login>, String>>,
    /// The `Authorization` header value that worked last.
    current: Mutex<Option<String>>,
    /// Held while answering a challenge, so that requests refused at once
    /// (the first batch of concurrent checks) ask for one token, not one each.
    answering: Mutex<()>,
}

impl Authenticator {
    /// Credentials for `registry` come from the first of `files` (auth
    /// files, `config.json` last) that has an entry for it.
    pub(crate) fn new(registry: &str, files: Vec<PathBuf>) -> Self {
        Authenticator {
            registry: registry.to_owned(),
            files,
            login: OnceLock::new(),
            current: Mutex::new(None),
            answering: Mutex::new(()),
        }
    }

    pub(crate) fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configured credentials, read at the first 401.
    fn login(&self, shown: &str) -> Result<Option<Login>, RemoteError> {
        let loaded = self.login.get_or_init(|| {
            for file in &self.files {
                match file_login(file, &self.registry) {
                    Ok(Some(login)) => return Ok(Some(login)),
                    Ok(None) => {}
                    Err(RemoteError::Credentials { reason, .. }) => {
                        return Err(format!("{}: {reason}", file.display()));
                    }
                    Err(error) => return Err(error.to_string()),
                }
            }
            Ok(None)
        });
        loaded.clone().map_err(|reason| RemoteError::Auth {
            url: shown.to_owned(),
            reason,
        })
    }

    /// Answers the challenge of a 401: the new authorization to send, and
    /// remembers it. `failed` is the authorization that was just refused.
    pub(crate) fn answer(
        &self,
        transport: &Transport,
        shown: &str,
        header: Option<&str>,
        failed: Option<&str>,
    ) -> Result<String, RemoteError> {
        let auth_error = |reason: String| RemoteError::Auth {
            url: shown.to_owned(),
            reason,
        };
        let challenge = header
            .and_then(Challenge::parse)
            .ok_or_else(|| auth_error("HTTP 401 without a WWW-Authenticate challenge".into()))?;
        let _answering = self.answering.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = self
            .current()
            .filter(|current| Some(current.as_str()) != failed)
        {
            // Another request answered the challenge meanwhile.
            return Ok(current);
        }
        let login = self.login(shown)?;
        let value = match challenge.scheme.as_str() {
            "basic" => match &login {
                Some(Login::Password { user, password }) => basic(user, password),
                Some(Login::IdentityToken(_)) => {
                    return Err(auth_error(
                        "the registry asks for a password, and the configuration holds an identity token".into(),
                    ));
                }
                None => {
                    return Err(auth_error(format!(
                        "the registry asks for a login and none is configured for {} (docker login {})",
                        self.registry, self.registry
                    )));
                }
            },
            "bearer" => format!(
                "Bearer {}",
                self.fetch_token(transport, shown, &challenge, login.as_ref())?
            ),
            other => {
                return Err(auth_error(format!(
                    "unsupported authentication scheme `{other}`"
                )));
            }
        };
        if failed == Some(value.as_str()) {
            return Err(auth_error(match login {
                Some(_) => format!(
                    "the credentials configured for {} are refused",
                    self.registry
                ),
                None => format!(
                    "the registry needs a login and none is configured for {} (docker login {})",
                    self.registry, self.registry
                ),
            }));
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(value.clone());
        Ok(value)
    }

    fn fetch_token(
        &self,
        transport: &Transport,
        shown: &str,
        challenge: &Challenge,
        login: Option<&Login>,
    ) -> Result<String, RemoteError> {
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let auth_error = |reason: String| RemoteError::Auth {
            url: shown.to_owned(),
            reason,
        };
        let realm = challenge
            .get("realm")
            .ok_or_else(|| auth_error("the Bearer challenge names no realm".into()))?;
        let mut realm_url = reqwest::Url::parse(realm)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                auth_error(format!("the token realm `{realm}` is not an http(s) URL"))
            })?;
        let service = challenge.get("service").map(str::to_owned);
        let scopes: Vec<String> = challenge
            .get("scope")
            .map(|scope| scope.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
        let realm_shown = super::redact(realm_url.as_str());
        let deadline = transport.document_deadline();
        let response = match login {
            Some(Login::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type".to_owned(), "refresh_token".to_owned()),
                    ("client_id".to_owned(), "xbuild".to_owned()),
                    ("refresh_token".to_owned(), refresh.clone()),
                ];
                form.extend(
                    service
                        .iter()
                        .map(|service| ("service".to_owned(), service.clone())),
                );
                form.extend(
                    scopes
                        .iter()
                        .map(|scope| ("scope".to_owned(), scope.clone())),
                );
                let body = form_encode(&form);
                transport.send_within("POST", &realm_shown, Some(&deadline), |client| {
                    Ok(client
                        .post(realm_url.clone())
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(body.clone()))
                })?
            }
            login => {
                {
                    let mut query = realm_url.query_pairs_mut();
                    if let Some(service) = &service {
                        query.append_pair("service", service);
                    }
                    for scope in &scopes {
                        query.append_pair("scope", scope);
                    }
                }
                transport.send_within("GET", &realm_shown, Some(&deadline), |client| {
                    let request = client.get(realm_url.clone());
                    Ok(match login {
                        Some(Login::Password { user, password }) => {
                            request.header(reqwest::header::AUTHORIZATION, basic(user, password))
                        }
                        _ => request,
                    })
                })?
            }
        };
        if !response.status().is_success() {
            let status = transport::status_error("GET", &realm_shown, response);
            return Err(auth_error(format!("the token service refused: {status}")));
        }
        let bytes = transport::read_small(
            transport,
            response,
            &realm_shown,
            1024 * 1024,
            "a token answer may hold",
            &deadline,
        )?;
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|error| auth_error(format!("the token service answered no token: {error}")))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| auth_error("the token service answered no token".into()))
    }
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn form_encode(pairs: &[(String, String)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("a constant URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_commas_inside_quotes() {
        let challenge = Challenge::parse(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(challenge.scheme, "bearer");
        assert_eq!(challenge.get("realm"), Some("http://127.0.0.1:1/token"));
        assert_eq!(challenge.get("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#).unwrap().scheme,
            "basic"
        );
    }

    fn config(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        dir
    }

    #[test]
    fn docker_config_auths_are_found_by_normalised_host() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("ci:pa:ss");
        let dir = config(&format!(
            r#"{{"auths": {{"https://127.0.0.1:5000/v1/": {{"auth": "{encoded}"}},
                           "127.0.0.1:5001": {{"identitytoken": "refresh"}}}}}}"#
        ));
        assert_eq!(
            docker_login(dir.path(), "127.0.0.1:5000").unwrap(),
            Some(Login::Password {
                user: "ci".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            docker_login(dir.path(), "127.0.0.1:5001").unwrap(),
            Some(Login::IdentityToken("refresh".into()))
        );
        assert_eq!(docker_login(dir.path(), "127.0.0.1:5002").unwrap(), None);
        let missing = tempfile::tempdir().unwrap();
        assert_eq!(
            docker_login(missing.path(), "127.0.0.1:5000").unwrap(),
            None
        );
        let broken = config("{not json");
        let error = docker_login(broken.path(), "127.0.0.1:5000").unwrap_err();
        assert!(error.to_string().contains("config.json"), "{error}");
    }

    #[test]
    fn a_credential_helper_is_run_and_not_found_is_anonymous() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-test");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$server\" = 127.0.0.1:5000 ]; then\n\
             echo '{\"ServerURL\":\"127.0.0.1:5000\",\"Username\":\"<token>\",\"Secret\":\"idt\"}'\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let program = helper.to_str().unwrap();
        let config = dir.path().join("config.json");
        assert_eq!(
            run_helper(program, "127.0.0.1:5000", &config).unwrap(),
            Some(Login::IdentityToken("idt".into()))
        );
        assert_eq!(
            run_helper(program, "127.0.0.1:5001", &config).unwrap(),
            None
        );
        let error = run_helper("docker-credential-absent-xbuild", "h", &config).unwrap_err();
        assert!(error.to_string().contains("could not be run"), "{error}");
    }
}
