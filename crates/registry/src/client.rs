//! The client and its request engine: scheme fallback, authentication and one retry.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use crate::auth::{basic_header, lock, parse_challenges, preferred, AuthCache, Challenge};
use crate::credentials::{Credential, DockerConfig};
use crate::error::RegistryError;
use crate::transport::{is_insecure, registry_endpoint, Agents, Endpoint, Scheme};
use crate::RegistryOptions;

/// Largest error or token body read into memory.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// A registry client shared by every thread of a command.
pub struct Client {
    pub(crate) opts: RegistryOptions,
    pub(crate) agents: Agents,
    auth: AuthCache,
    /// Host → the scheme that connected, so fallbacks are paid once.
    schemes: Mutex<HashMap<String, Scheme>>,
    /// Registry → stored credential, read from the config file once.
    creds: Mutex<HashMap<String, Option<Credential>>>,
}

/// A request body.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of exactly this many bytes; it can be sent only once.
    Stream(Option<Box<dyn Read + Send>>, u64),
}

impl Body<'_> {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(..))
    }
}

/// Which credentials answer a challenge.
#[derive(Clone, Copy)]
pub(crate) enum Creds<'a> {
    /// Those stored in the Docker config for the endpoint's registry.
    Stored,
    /// These, and no cached token (`login` must prove the password itself).
    Given(&'a Credential),
}

/// One request to a registry endpoint.
pub(crate) struct Request<'a> {
    pub method: &'static str,
    /// A path starting with `/v2/`, or an absolute URL (an upload location).
    pub target: &'a str,
    pub headers: Vec<(&'static str, String)>,
    /// Token scopes the request needs.
    pub scopes: &'a [String],
    /// Repository named in errors; empty for `/v2/`.
    pub repository: &'a str,
}

/// A registry's answer with the URL that produced it.
pub(crate) struct Reply {
    pub resp: ureq::Response,
    /// The URL requested (before redirects), for errors and relative `Location`s.
    pub url: String,
}

impl Client {
    /// Creates a client; nothing is contacted until a request is made.
    pub fn new(opts: RegistryOptions) -> Result<Client, RegistryError> {
        Ok(Client {
            agents: Agents::new(&opts.user_agent)?,
            opts,
            auth: AuthCache::default(),
            schemes: Mutex::new(HashMap::new()),
            creds: Mutex::new(HashMap::new()),
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    /// Verifies `username`/`password` against `registry` (`GET /v2/` through the auth flow).
    ///
    /// A registry that asks for no authentication at all accepts any login, as with Docker.
    pub fn check_login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RegistryError> {
        let ep = registry_endpoint(registry, &self.opts);
        let cred = Credential {
            username: username.to_string(),
            password: password.to_string(),
        };
        let req = Request {
            method: "GET",
            target: "/v2/",
            headers: Vec::new(),
            scopes: &[],
            repository: "",
        };
        let reply = self.send(&ep, &req, Body::Empty, Creds::Given(&cred))?;
        match reply.resp.status() {
            200..=299 => Ok(()),
            _ => Err(self.unexpected(&ep, reply, "", &ep.registry)),
        }
    }

    /// Sends `req` to `ep`, answering one authentication challenge.
    ///
    /// Every status comes back as a reply except 401/403 after the retry, which become
    /// `Unauthorized`.
    pub(crate) fn send(
        &self,
        ep: &Endpoint,
        req: &Request<'_>,
        mut body: Body<'_>,
        creds: Creds<'_>,
    ) -> Result<Reply, RegistryError> {
        let unauthorized = || RegistryError::Unauthorized {
            registry: ep.registry.clone(),
            repository: req.repository.to_string(),
        };
        let mut authorization = self.authorization(ep, req, creds)?;
        let mut retried = false;
        loop {
            let reply = self.send_once(ep, req, &mut body, authorization.as_deref())?;
            match reply.resp.status() {
                401 if !retried && body.replayable() => {
                    retried = true;
                    let challenge = reply
                        .resp
                        .header("www-authenticate")
                        .map(parse_challenges)
                        .and_then(preferred)
                        .ok_or_else(unauthorized)?;
                    self.auth.set_challenge(&ep.host, challenge);
                    self.auth.forget_token(&ep.host, &req.scopes.join(" "));
                    authorization = Some(
                        self.authorization(ep, req, creds)?
                            .ok_or_else(unauthorized)?,
                    );
                }
                401 | 403 => return Err(unauthorized()),
                _ => return Ok(reply),
            }
        }
    }

    /// The `Authorization` header for a request, from what is known of the endpoint's scheme.
    fn authorization(
        &self,
        ep: &Endpoint,
        req: &Request<'_>,
        creds: Creds<'_>,
    ) -> Result<Option<String>, RegistryError> {
        let Some(challenge) = self.auth.challenge(&ep.host) else {
            return Ok(None);
        };
        match challenge {
            Challenge::Basic { .. } => Ok(self.credential(ep, creds)?.map(|c| basic_header(&c))),
            Challenge::Bearer { realm, service, .. } => {
                let key = req.scopes.join(" ");
                if let (Creds::Stored, Some(t)) = (creds, self.auth.token(&ep.host, &key)) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let cred = self.credential(ep, creds)?;
                let (token, lifetime) = self.fetch_token(
                    ep,
                    &realm,
                    service.as_deref(),
                    req.scopes,
                    cred.as_ref(),
                    req.repository,
                )?;
                if let Creds::Stored = creds {
                    self.auth.put_token(&ep.host, &key, token.clone(), lifetime);
                }
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn credential(
        &self,
        ep: &Endpoint,
        creds: Creds<'_>,
    ) -> Result<Option<Credential>, RegistryError> {
        if let Creds::Given(c) = creds {
            return Ok(Some(c.clone()));
        }
        let mut cache = lock(&self.creds);
        if let Some(c) = cache.get(&ep.registry) {
            return Ok(c.clone());
        }
        let path = self
            .opts
            .docker_config
            .clone()
            .unwrap_or_else(DockerConfig::default_path);
        let cred = DockerConfig::load(&path)?.get(&ep.registry)?;
        cache.insert(ep.registry.clone(), cred.clone());
        Ok(cred)
    }

    fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cred: Option<&Credential>,
        repository: &str,
    ) -> Result<(String, std::time::Duration), RegistryError> {
        let invalid = |message: String| RegistryError::InvalidResponse {
            url: realm.to_string(),
            message,
        };
        let mut url = url::Url::parse(realm)
            .map_err(|e| invalid(format!("invalid token realm in challenge: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
            if let Some(c) = cred {
                q.append_pair("account", &c.username);
            }
        }
        let host = authority(&url);
        let agent = self
            .agents
            .get(url.scheme(), &host, is_insecure(&host, &self.opts))?;
        let mut r = agent.get(url.as_str());
        if let Some(c) = cred {
            r = r.set("Authorization", &basic_header(c));
        }
        let resp = match r.call() {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryError::Unreachable {
                    address: realm.to_string(),
                    source: Box::new(t),
                })
            }
        };
        match resp.status() {
            200 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    registry: ep.registry.clone(),
                    repository: repository.to_string(),
                })
            }
            status => {
                return Err(RegistryError::Http {
                    status,
                    url: realm.to_string(),
                    message: error_message(resp),
                })
            }
        }
        let mut text = String::new();
        resp.into_reader()
            .take(MAX_SMALL_BODY)
            .read_to_string(&mut text)
            .map_err(|e| RegistryError::io(format!("reading token from {realm}"), e))?;
        let parsed: crate::auth::TokenResponse = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("token response is not JSON: {e}")))?;
        parsed
            .into_token()
            .ok_or_else(|| invalid("token response has no token".to_string()))
    }

    /// Sends once, trying the endpoint's schemes in order until one connects.
    fn send_once(
        &self,
        ep: &Endpoint,
        req: &Request<'_>,
        body: &mut Body<'_>,
        authorization: Option<&str>,
    ) -> Result<Reply, RegistryError> {
        let absolute = req.target.starts_with("http://") || req.target.starts_with("https://");
        let known = lock(&self.schemes).get(&ep.host).copied();
        let schemes = match known {
            Some(s) => vec![s],
            None => ep.schemes.clone(),
        };
        for (i, scheme) in schemes.iter().enumerate() {
            let url = if absolute {
                req.target.to_string()
            } else {
                format!("{}://{}{}", scheme.as_str(), ep.host, req.target)
            };
            let parsed = url::Url::parse(&url).map_err(|e| RegistryError::InvalidResponse {
                url: url.clone(),
                message: e.to_string(),
            })?;
            let host = authority(&parsed);
            let agent = self
                .agents
                .get(parsed.scheme(), &host, is_insecure(&host, &self.opts))?;
            let mut r = agent.request(req.method, &url);
            for (name, value) in &req.headers {
                r = r.set(name, value);
            }
            // Registry credentials never go to another host (an upload service, a CDN).
            if let Some(a) = authorization.filter(|_| same_host(&host, &ep.host)) {
                r = r.set("Authorization", a);
            }
            let result = match body {
                Body::Empty if matches!(req.method, "POST" | "PUT" | "PATCH") => r.send_bytes(&[]),
                Body::Empty => r.call(),
                Body::Bytes(b) => r.send_bytes(b),
                Body::Stream(reader, size) => {
                    let Some(reader) = reader.take() else {
                        return Err(RegistryError::InvalidResponse {
                            url,
                            message: "request body already sent once".to_string(),
                        });
                    };
                    r.set("Content-Length", &size.to_string())
                        .send(reader.take(*size))
                }
            };
            match result {
                Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                    if known.is_none() && ep.schemes.len() > 1 && !absolute {
                        lock(&self.schemes).insert(ep.host.clone(), *scheme);
                    }
                    return Ok(Reply { resp, url });
                }
                Err(ureq::Error::Transport(t)) => {
                    if i + 1 < schemes.len() && !absolute && body.replayable() {
                        continue;
                    }
                    return Err(RegistryError::Unreachable {
                        address: ep.host.clone(),
                        source: Box::new(t),
                    });
                }
            }
        }
        Err(RegistryError::Unreachable {
            address: ep.host.clone(),
            source: "no scheme to try".into(),
        })
    }

    /// The error for a reply whose status the caller did not expect.
    pub(crate) fn unexpected(
        &self,
        ep: &Endpoint,
        reply: Reply,
        repository: &str,
        reference: &str,
    ) -> RegistryError {
        match reply.resp.status() {
            404 => RegistryError::NotFound {
                reference: reference.to_string(),
            },
            401 | 403 => RegistryError::Unauthorized {
                registry: ep.registry.clone(),
                repository: repository.to_string(),
            },
            status => RegistryError::Http {
                status,
                url: reply.url,
                message: error_message(reply.resp),
            },
        }
    }
}

/// `host[:port]` of a URL, the port only when it is not the scheme's default.
pub(crate) fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn same_host(a: &str, b: &str) -> bool {
    let strip = |h: &str| {
        h.strip_suffix(":443")
            .or_else(|| h.strip_suffix(":80"))
            .unwrap_or(h)
            .to_ascii_lowercase()
    };
    strip(a) == strip(b)
}

/// The registry's explanation from an error body (`{"errors":[{"code","message"}]}`), else
/// the first line of the body, else the status text.
pub(crate) fn error_message(resp: ureq::Response) -> String {
    let status_text = resp.status_text().to_string();
    let mut text = String::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_string(&mut text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or_default();
                    let msg = e
                        .get("message")
                        .and_then(|c| c.as_str())
                        .unwrap_or_default();
                    match (code.is_empty(), msg.is_empty()) {
                        (false, false) => format!("{}: {msg}", code.to_ascii_lowercase()),
                        (false, true) => code.to_ascii_lowercase(),
                        _ => msg.to_string(),
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
    }
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(l) => l.chars().take(200).collect(),
        None => status_text.to_ascii_lowercase(),
    }
}
