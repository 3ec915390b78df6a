//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens and their cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::credentials::Credential;

/// How long a token lives when the token server does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens this close to expiry are renewed first, so a request does not carry a dying token.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// One authentication scheme a registry offered in a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Token authentication: get a token from `realm`, then send it as `Bearer`.
    Bearer {
        /// The token server URL.
        realm: String,
        /// The `service` parameter to pass to the token server.
        service: Option<String>,
        /// The scope the registry suggested, if any.
        scope: Option<String>,
    },
    /// HTTP Basic authentication with the user's credentials.
    Basic {
        /// The realm, informational only.
        realm: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header into the challenges Berth understands.
///
/// Values may be quoted and contain commas and escaped quotes; several challenges may share
/// one header; unknown schemes are skipped.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut raw: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != ',' {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        if token.is_empty() {
            // A stray '=' (token68 padding); skip it.
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if j < chars.len() && chars[j] == '=' {
            i = j + 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if i < chars.len() && chars[i] == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                    value.push(chars[i]);
                    i += 1;
                }
            }
            if let Some((_, params)) = raw.last_mut() {
                params.push((token.to_ascii_lowercase(), value));
            }
        } else {
            raw.push((token, Vec::new()));
        }
    }
    raw.into_iter()
        .filter_map(|(scheme, params)| {
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
            };
            match scheme.to_ascii_lowercase().as_str() {
                "bearer" => Some(Challenge::Bearer {
                    realm: get("realm")?,
                    service: get("service"),
                    scope: get("scope"),
                }),
                "basic" => Some(Challenge::Basic {
                    realm: get("realm"),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Picks the challenge to answer: bearer when offered, since it also works anonymously.
pub(crate) fn preferred(challenges: Vec<Challenge>) -> Option<Challenge> {
    let mut basic = None;
    for c in challenges {
        match c {
            Challenge::Bearer { .. } => return Some(c),
            Challenge::Basic { .. } => basic = basic.or(Some(c)),
        }
    }
    basic
}

/// The token scope for pulling from `repository`.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The token scope for pushing to `repository`.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// The value of an `Authorization: Basic` header.
pub(crate) fn basic_header(cred: &Credential) -> String {
    let pair = format!("{}:{}", cred.username, cred.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A token server's answer.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it may be used.
    pub(crate) fn into_token(self) -> Option<(String, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = self
            .expires_in
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Some((token, lifetime))
    }
}

/// What the client has learnt about each registry's authentication, shared by all threads.
#[derive(Default)]
pub(crate) struct AuthCache {
    /// Host → the challenge it answered with, so later requests authenticate up front.
    challenges: Mutex<HashMap<String, Challenge>>,
    /// (host, scopes) → (token, when it stops being used).
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl AuthCache {
    pub(crate) fn challenge(&self, host: &str) -> Option<Challenge> {
        lock(&self.challenges).get(host).cloned()
    }

    pub(crate) fn set_challenge(&self, host: &str, c: Challenge) {
        lock(&self.challenges).insert(host.to_string(), c);
    }

    pub(crate) fn token(&self, host: &str, scopes: &str) -> Option<String> {
        let tokens = lock(&self.tokens);
        let (token, until) = tokens.get(&(host.to_string(), scopes.to_string()))?;
        (Instant::now() < *until).then(|| token.clone())
    }

    pub(crate) fn put_token(&self, host: &str, scopes: &str, token: String, lifetime: Duration) {
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        lock(&self.tokens).insert((host.to_string(), scopes.to_string()), (token, until));
    }

    pub(crate) fn forget_token(&self, host: &str, scopes: &str) {
        lock(&self.tokens).remove(&(host.to_string(), scopes.to_string()));
    }
}

/// Locks a mutex, ignoring poisoning: the maps stay valid even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_commas() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#;
        assert_eq!(
            parse_challenges(h),
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into()),
            }]
        );
    }

    #[test]
    fn bearer_spaces_case_and_escapes() {
        let h = r#"bearer  Realm = "http://127.0.0.1:1/t\"x" , service=reg"#;
        assert_eq!(
            parse_challenges(h),
            vec![Challenge::Bearer {
                realm: "http://127.0.0.1:1/t\"x".into(),
                service: Some("reg".into()),
                scope: None,
            }]
        );
    }

    #[test]
    fn basic_and_multiple() {
        assert_eq!(
            parse_challenges(r#"Basic realm="test""#),
            vec![Challenge::Basic {
                realm: Some("test".into())
            }]
        );
        let both = parse_challenges(r#"Basic realm="a, b", Bearer realm="https://t/x",service=s"#);
        assert_eq!(both.len(), 2);
        assert!(matches!(
            preferred(both),
            Some(Challenge::Bearer { realm, .. }) if realm == "https://t/x"
        ));
        assert!(parse_challenges("Negotiate abc==").is_empty());
        assert!(parse_challenges("").is_empty());
        // Bearer without realm cannot be answered.
        assert!(parse_challenges(r#"Bearer service="x""#).is_empty());
    }

    #[test]
    fn token_response_fields() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token(), Some(("a".into(), DEFAULT_TOKEN_LIFETIME)));
        let t: TokenResponse =
            serde_json::from_str(r#"{"token":"t","access_token":"a","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(), Some(("t".into(), Duration::from_secs(300))));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }

    #[test]
    fn token_cache_expires() {
        let c = AuthCache::default();
        c.put_token("h", "s", "tok".into(), Duration::from_secs(60));
        assert_eq!(c.token("h", "s").as_deref(), Some("tok"));
        assert_eq!(c.token("h", "other"), None);
        c.put_token("h", "s", "old".into(), Duration::from_secs(1));
        assert_eq!(c.token("h", "s"), None);
        c.forget_token("h", "s");
        assert_eq!(c.token("h", "s"), None);
    }

    #[test]
    fn basic_header_encodes() {
        let cred = Credential {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(basic_header(&cred), "Basic dXNlcjpwYXNz");
    }
}
