//! A throwaway certificate authority for test servers and test clients.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Returns the one crypto provider the workspace uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA whose certificates no real client trusts.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// Mints a CA whose subject common name is `name`.
    ///
    /// # Panics
    ///
    /// Panics if key generation or signing fails, which only a broken crypto build causes.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generating an ECDSA key pair");
        let mut params = CertificateParams::new(Vec::new()).expect("empty name list is valid");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;

        let cert = params.self_signed(&key).expect("self-signing the test CA");
        TestCa {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Returns the CA certificate in PEM form.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Returns the CA certificate in DER form.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Writes the CA certificate in PEM form to `path`.
    pub fn write_cert_pem(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, &self.cert_pem)
    }

    /// Issues a leaf certificate for `names` (DNS names or IP addresses) and returns the
    /// chain (leaf, then this CA) with the leaf's private key.
    ///
    /// # Panics
    ///
    /// Panics if a name is not a valid DNS name or IP address.
    pub fn issue(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("generating an ECDSA key pair");
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("test names are valid");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing a test leaf");

        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone(), self.cert_der.clone()], key_der)
    }

    /// Builds a server configuration that presents a leaf for `names`, offering HTTP/2
    /// and HTTP/1.1 through ALPN.
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let (chain, key) = self.issue(names);
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the freshly issued leaf matches its key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Builds a client configuration that trusts this CA only.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .expect("the test CA certificate parses");
        let mut config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|proto| proto.to_vec()).collect();
        Arc::new(config)
    }
}

/// Builds a client configuration that trusts the CA certificate in `ca_pem` only.
///
/// # Panics
///
/// Panics if `ca_pem` contains no parsable certificate.
pub fn client_config_from_pem(ca_pem: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.expect("valid PEM certificate"))
            .expect("the certificate parses");
    }
    assert!(!roots.is_empty(), "no certificate in the CA PEM");
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|proto| proto.to_vec()).collect();
    Arc::new(config)
}
