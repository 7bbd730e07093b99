//! The per-bottle certificate authority: minted by the launcher, handed to the sidecar,
//! and used to mint one leaf certificate per host the agent connects to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bottle_policy::Host;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::ProxyError;

/// Validity of the bottle CA. Bottles are short-lived; a CA that outlives them is
/// useless to keep and harmful to leak.
const CA_VALIDITY: time::Duration = time::Duration::days(30);

/// Validity of a leaf certificate.
const LEAF_VALIDITY: time::Duration = time::Duration::days(2);

/// Age after which a cached leaf is minted again, well inside [`LEAF_VALIDITY`].
const LEAF_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

/// Backdating of `not_before`, so clocks that lag a little still accept the certificate.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// The bottle CA, with a cache of TLS server configurations for the leaves it minted.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    leaves: Mutex<HashMap<Host, (Instant, Arc<ServerConfig>)>>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Mints a new CA: ECDSA P-256, path length 0 (it can sign leaves only), valid for 30
    /// days, with `common_name` as its subject.
    pub fn generate(common_name: &str) -> Result<CertificateAuthority, ProxyError> {
        let key = KeyPair::generate()?;
        let params = ca_params(common_name)?;
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            leaves: Mutex::default(),
        })
    }

    /// Loads a CA from its certificate and private key, both PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, ProxyError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        Ok(CertificateAuthority {
            issuer,
            cert_der: der,
            cert_pem: cert_pem.to_owned(),
            leaves: Mutex::default(),
        })
    }

    /// Returns the CA certificate, PEM encoded, for the bottle's trust store.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Returns the CA private key, PEM encoded (PKCS#8). It belongs to the sidecar only.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Returns a TLS server configuration presenting a leaf for `host`, minted on first
    /// use and cached. It offers HTTP/2 and HTTP/1.1 through ALPN.
    pub fn server_config(&self, host: &Host) -> Result<Arc<ServerConfig>, ProxyError> {
        let mut leaves = self
            .leaves
            .lock()
            .expect("leaf cache lock is never poisoned");
        if let Some((minted, config)) = leaves.get(host)
            && minted.elapsed() < LEAF_REFRESH
        {
            return Ok(config.clone());
        }

        let (chain, key) = self.mint_leaf(host)?;
        let mut config = ServerConfig::builder_with_provider(crate::crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = Arc::new(config);
        leaves.insert(host.clone(), (Instant::now(), config.clone()));
        Ok(config)
    }

    /// Mints a leaf certificate for `host` and returns its chain and key.
    pub fn mint_leaf(
        &self,
        host: &Host,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ProxyError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match host {
            Host::Domain(name) => SanType::DnsName(name.clone().try_into()?),
            Host::Ip(ip) => SanType::IpAddress(*ip),
        }];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host.to_string());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;

        let cert = params.signed_by(&key, &self.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key))
    }
}

fn ca_params(common_name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "bot-bottle");
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_pem() {
        let ca = CertificateAuthority::generate("bottle test CA").expect("generate");
        let loaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).expect("load");
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        let host = Host::parse("api.example.org").expect("valid host");
        let (chain, _) = loaded.mint_leaf(&host).expect("mint a leaf");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], ca.cert_der);
    }

    #[test]
    fn debug_redacts_key() {
        let ca = CertificateAuthority::generate("bottle test CA").expect("generate");
        let text = format!("{ca:?}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn caches_leaf_configs() {
        let ca = CertificateAuthority::generate("bottle test CA").expect("generate");
        let host = Host::parse("api.example.org").expect("valid host");
        let first = ca.server_config(&host).expect("config");
        let second = ca.server_config(&host).expect("config");
        assert!(Arc::ptr_eq(&first, &second));
    }
}
