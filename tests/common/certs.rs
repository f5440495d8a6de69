//! Test PKI generated with rcgen: a CA, a broker certificate for 127.0.0.1/localhost, a client
//! certificate (CN=alice,OU=eng,O=acme) signed by the CA, and a "rogue" client certificate
//! signed by another CA. Written as PEM files into a directory; also used by
//! `examples/gen_certs.rs` for the Python/kcat security checks.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// Paths of the generated PEM files.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// CA certificate clients and the broker trust.
    pub ca: PathBuf,
    /// Broker keystore: certificate chain then private key, one PEM file.
    pub broker: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate from a CA the broker does not trust.
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
    /// A renewed broker keystore: same subject and names, new key (certificate reload).
    pub broker_renewed: PathBuf,
    /// A keystore for another identity (CN=other-broker), same CA.
    pub broker_other: PathBuf,
}

fn ca(cn: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert, key)
}

fn leaf(
    sans: &[&str],
    subject: &[(DnType, &str)],
    issuer: &rcgen::Certificate,
    issuer_key: &KeyPair,
) -> (rcgen::Certificate, KeyPair) {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    let key = KeyPair::generate().expect("leaf key");
    let cert = params
        .signed_by(&key, issuer, issuer_key)
        .expect("signed leaf");
    (cert, key)
}

/// Generates the PKI into `dir` (created if missing).
pub fn generate(dir: &Path) -> TestPki {
    std::fs::create_dir_all(dir).expect("pki dir");
    let (ca_cert, ca_key) = ca("sluice-test-ca");
    let (broker, broker_key) = leaf(
        &["localhost", "127.0.0.1"],
        &[(DnType::CommonName, "broker")],
        &ca_cert,
        &ca_key,
    );
    let (client, client_key) = leaf(
        &[],
        &[
            (DnType::OrganizationName, "acme"),
            (DnType::OrganizationalUnitName, "eng"),
            (DnType::CommonName, "alice"),
        ],
        &ca_cert,
        &ca_key,
    );
    let (rogue_ca, rogue_ca_key) = ca("rogue-ca");
    let (rogue, rogue_key) = leaf(
        &[],
        &[(DnType::CommonName, "mallory")],
        &rogue_ca,
        &rogue_ca_key,
    );
    let (renewed, renewed_key) = leaf(
        &["localhost", "127.0.0.1"],
        &[(DnType::CommonName, "broker")],
        &ca_cert,
        &ca_key,
    );
    let (other, other_key) = leaf(
        &["localhost", "127.0.0.1"],
        &[(DnType::CommonName, "other-broker")],
        &ca_cert,
        &ca_key,
    );
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    TestPki {
        ca: write("ca.pem", ca_cert.pem()),
        broker: write(
            "broker.pem",
            format!("{}{}", broker.pem(), broker_key.serialize_pem()),
        ),
        client_cert: write("client.crt", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        rogue_cert: write("rogue.crt", rogue.pem()),
        rogue_key: write("rogue.key", rogue_key.serialize_pem()),
        broker_renewed: write(
            "broker-renewed.pem",
            format!("{}{}", renewed.pem(), renewed_key.serialize_pem()),
        ),
        broker_other: write(
            "broker-other.pem",
            format!("{}{}", other.pem(), other_key.serialize_pem()),
        ),
    }
}
