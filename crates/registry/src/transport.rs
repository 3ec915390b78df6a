//! Where and how to connect: registry hosts, schemes, mirrors, proxies and TLS settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::auth::lock;
use crate::credentials::normalize_registry;
use crate::error::RegistryError;
use crate::RegistryOptions;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// How to reach a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// HTTPS with certificate verification.
    Https,
    /// HTTPS accepting any certificate (insecure registries).
    HttpsUnverified,
    /// Plain HTTP.
    Http,
}

impl Scheme {
    /// The URL scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https | Scheme::HttpsUnverified => "https",
            Scheme::Http => "http",
        }
    }
}

/// One host that can serve a registry's content, with the schemes to try in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Network address, `host[:port]`.
    pub host: String,
    /// Name under which credentials for it are stored (`docker.io` for Docker Hub).
    pub registry: String,
    /// Schemes to try, in order; the first that connects is remembered.
    pub schemes: Vec<Scheme>,
}

/// The host that serves a registry's API: Docker Hub's is not `docker.io` itself.
pub fn api_host(registry: &str) -> &str {
    match normalize_registry(registry) {
        "docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// Whether `host` (with or without port) is this machine.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Strips a scheme and trailing path from a host as a user may write it in settings.
fn bare_host(s: &str) -> &str {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    rest.split('/').next().unwrap_or(rest)
}

/// Whether TLS verification is off for `host`, and plain HTTP allowed.
pub fn is_insecure(host: &str, opts: &RegistryOptions) -> bool {
    if !opts.tls_verify {
        return true;
    }
    let want = normalize_registry(bare_host(host));
    opts.insecure
        .iter()
        .any(|h| normalize_registry(bare_host(h)) == want || bare_host(h) == host)
}

/// The schemes to try for `host`, in order.
pub fn schemes_for(host: &str, opts: &RegistryOptions) -> Vec<Scheme> {
    match (is_insecure(host, opts), is_loopback(host)) {
        // A local registry marked insecure is plain HTTP; a TLS attempt would only add latency.
        (true, true) => vec![Scheme::Http],
        (true, false) => vec![Scheme::HttpsUnverified, Scheme::Http],
        // As Docker does, a registry on this machine may speak plain HTTP without being listed.
        (false, true) => vec![Scheme::Https, Scheme::Http],
        (false, false) => vec![Scheme::Https],
    }
}

/// The endpoint of `registry` itself.
pub fn registry_endpoint(registry: &str, opts: &RegistryOptions) -> Endpoint {
    let registry = normalize_registry(registry);
    let host = api_host(registry);
    Endpoint {
        host: host.to_string(),
        registry: registry.to_string(),
        schemes: schemes_for(host, opts),
    }
}

/// Endpoints to pull from: the configured mirrors first, then the registry itself.
pub fn pull_endpoints(registry: &str, opts: &RegistryOptions) -> Vec<Endpoint> {
    let name = normalize_registry(registry);
    let mut out = Vec::new();
    for (key, mirrors) in &opts.mirrors {
        if normalize_registry(bare_host(key)) != name {
            continue;
        }
        for m in mirrors {
            let host = bare_host(m.trim());
            if host.is_empty() || normalize_registry(host) == name {
                continue;
            }
            let schemes = if m.starts_with("http://") {
                vec![Scheme::Http]
            } else if m.starts_with("https://") {
                if is_insecure(host, opts) {
                    vec![Scheme::HttpsUnverified]
                } else {
                    vec![Scheme::Https]
                }
            } else {
                schemes_for(host, opts)
            };
            out.push(Endpoint {
                host: host.to_string(),
                registry: host.to_string(),
                schemes,
            });
        }
    }
    out.push(registry_endpoint(registry, opts));
    out
}

/// Proxy settings from the environment, as curl reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    https: Option<String>,
    http: Option<String>,
    no_proxy: Vec<String>,
}

impl ProxyEnv {
    /// Reads `https_proxy`, `http_proxy`, `all_proxy` and `no_proxy` (either case).
    pub fn from_env() -> ProxyEnv {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
                .map(|v| v.trim().to_string())
        };
        let all = var(&["all_proxy", "ALL_PROXY"]);
        ProxyEnv {
            https: var(&["https_proxy", "HTTPS_PROXY"]).or(all.clone()),
            // Upper-case HTTP_PROXY is ignored, as curl does, because CGI sets it from requests.
            http: var(&["http_proxy"]).or(all),
            no_proxy: var(&["no_proxy", "NO_PROXY"])
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The proxy to use for `host` over `scheme`, if any.
    pub fn for_host(&self, scheme: &str, host: &str) -> Option<&str> {
        if is_loopback(host) {
            return None;
        }
        let host = host.to_ascii_lowercase();
        let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        let bypass = self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let e = entry.trim_start_matches('.');
            let target = if e.contains(':') { host.as_str() } else { name };
            target == e || target.ends_with(&format!(".{e}"))
        });
        if bypass {
            return None;
        }
        match scheme {
            "https" => self.https.as_deref(),
            _ => self.http.as_deref(),
        }
    }
}

/// HTTP agents, one per (TLS verification, proxy) pair, built on first use and shared.
pub(crate) struct Agents {
    user_agent: String,
    proxies: ProxyEnv,
    unverified_tls: Arc<rustls::ClientConfig>,
    agents: Mutex<HashMap<(bool, Option<String>), ureq::Agent>>,
}

impl Agents {
    pub(crate) fn new(user_agent: &str) -> Result<Agents, RegistryError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let unverified_tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| RegistryError::Tls {
                message: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Agents {
            user_agent: user_agent.to_string(),
            proxies: ProxyEnv::from_env(),
            unverified_tls: Arc::new(unverified_tls),
            agents: Mutex::new(HashMap::new()),
        })
    }

    /// The agent for a request to `host` over `scheme`.
    pub(crate) fn get(
        &self,
        scheme: &str,
        host: &str,
        unverified: bool,
    ) -> Result<ureq::Agent, RegistryError> {
        let proxy = self.proxies.for_host(scheme, host).map(str::to_string);
        let key = (unverified, proxy);
        let mut agents = lock(&self.agents);
        if let Some(a) = agents.get(&key) {
            return Ok(a.clone());
        }
        let mut b = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(IO_TIMEOUT)
            .timeout_write(IO_TIMEOUT)
            .user_agent(&self.user_agent)
            .redirects(10);
        if unverified {
            b = b.tls_config(self.unverified_tls.clone());
        }
        if let Some(p) = &key.1 {
            let proxy = ureq::Proxy::new(p).map_err(|e| RegistryError::Unreachable {
                address: format!("proxy {p}"),
                source: Box::new(e),
            })?;
            b = b.proxy(proxy);
        }
        let agent = b.build();
        agents.insert(key, agent.clone());
        Ok(agent)
    }
}

/// Certificate verifier for registries the user declared insecure: the handshake signature is
/// still checked, the certificate chain and name are not.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(insecure: &[&str], tls_verify: bool) -> RegistryOptions {
        RegistryOptions {
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
            tls_verify,
            ..RegistryOptions::default()
        }
    }

    #[test]
    fn scheme_table() {
        use Scheme::*;
        let cases: &[(&str, &[&str], bool, &[Scheme])] = &[
            ("quay.io", &[], true, &[Https]),
            ("quay.io", &["quay.io"], true, &[HttpsUnverified, Http]),
            (
                "quay.io",
                &["http://quay.io/"],
                true,
                &[HttpsUnverified, Http],
            ),
            ("quay.io", &[], false, &[HttpsUnverified, Http]),
            ("reg.lan:5000", &["reg.lan"], true, &[Https]),
            (
                "reg.lan:5000",
                &["reg.lan:5000"],
                true,
                &[HttpsUnverified, Http],
            ),
            ("127.0.0.1:5000", &["127.0.0.1:5000"], true, &[Http]),
            ("localhost:5000", &[], false, &[Http]),
            ("localhost:5000", &[], true, &[Https, Http]),
            ("[::1]:5000", &["[::1]:5000"], true, &[Http]),
        ];
        for (host, insecure, verify, want) in cases {
            assert_eq!(
                schemes_for(host, &opts(insecure, *verify)),
                want.to_vec(),
                "{host} insecure={insecure:?} tls_verify={verify}"
            );
        }
    }

    #[test]
    fn client_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Client>();
        assert_send_sync::<crate::RegistryError>();
        fn assert_send<T: Send>() {}
        assert_send::<crate::BlobStream>();
    }

    #[test]
    fn docker_hub_endpoint() {
        let ep = registry_endpoint("docker.io", &RegistryOptions::default());
        assert_eq!(ep.host, "registry-1.docker.io");
        let insecure_hub = registry_endpoint("index.docker.io", &opts(&["docker.io"], true));
        assert_eq!(
            insecure_hub.schemes,
            vec![Scheme::HttpsUnverified, Scheme::Http]
        );
        assert_eq!(ep.registry, "docker.io");
        assert_eq!(ep.schemes, vec![Scheme::Https]);
        let ep = registry_endpoint("127.0.0.1:5000", &opts(&["127.0.0.1:5000"], true));
        assert_eq!(ep.host, "127.0.0.1:5000");
        assert_eq!(ep.schemes, vec![Scheme::Http]);
    }

    #[test]
    fn mirrors_come_first() {
        let mut o = opts(&["mirror.lan:5000"], true);
        o.mirrors.insert(
            "docker.io".into(),
            vec![
                "mirror.lan:5000".into(),
                "https://mirror.gcr.io".into(),
                "http://plain.lan/".into(),
            ],
        );
        let eps = pull_endpoints("docker.io", &o);
        let got: Vec<(&str, Vec<Scheme>)> = eps
            .iter()
            .map(|e| (e.host.as_str(), e.schemes.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "mirror.lan:5000",
                    vec![Scheme::HttpsUnverified, Scheme::Http]
                ),
                ("mirror.gcr.io", vec![Scheme::Https]),
                ("plain.lan", vec![Scheme::Http]),
                ("registry-1.docker.io", vec![Scheme::Https]),
            ]
        );
        assert_eq!(pull_endpoints("quay.io", &o).len(), 1);
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("[::1]:443"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("localhost.example.com"));
    }

    #[test]
    fn proxy_selection() {
        let env: HashMap<&str, &str> = [
            ("https_proxy", "http://proxy:3128"),
            ("http_proxy", "http://plainproxy:3128"),
            ("no_proxy", "example.org, .lan,reg.site:5000"),
        ]
        .into_iter()
        .collect();
        let p = ProxyEnv::from_lookup(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(p.for_host("https", "quay.io"), Some("http://proxy:3128"));
        assert_eq!(
            p.for_host("http", "quay.io"),
            Some("http://plainproxy:3128")
        );
        assert_eq!(p.for_host("https", "example.org"), None);
        assert_eq!(p.for_host("https", "cdn.example.org:443"), None);
        assert_eq!(p.for_host("https", "reg.lan"), None);
        assert_eq!(p.for_host("https", "reg.site:5000"), None);
        assert_eq!(
            p.for_host("https", "reg.site:6000"),
            Some("http://proxy:3128")
        );
        assert_eq!(p.for_host("http", "127.0.0.1:5000"), None);
        let none = ProxyEnv::from_lookup(|_| None);
        assert_eq!(none.for_host("https", "quay.io"), None);
    }
}
