//! `objectFormat: pfx` on a certificate whose secret Key Vault stores as PEM
//! (`application/x-pem-file`, Azure issues #1945, #979, #1767; README, "Object types").
//!
//! The Go provider writes such a secret's PEM unchanged whatever `objectFormat` says, so
//! `objectFormat: pfx` alone gives the PEM text, and with `objectEncoding: base64` (how one asks for
//! the binary PFX of a PKCS#12-stored certificate) it fails to base64-decode the PEM ("illegal base64
//! data at input byte 0"). We keep the first, which works today, and turn the failing second into
//! what it asks for: a PKCS#12 built from the PEM's key and certificates, given to `objectEncoding`
//! as base64 text exactly as Key Vault gives a PKCS#12-stored certificate's, so both end up as the
//! same kind of file. `objectEncoding: hex` fails with a message saying what to use instead.

use base64::Engine as _;
use der::Decode as _;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::der_writer::{EC_PUBLIC_KEY_OID, NULL, OCTET_STRING, RSA_ENCRYPTION_OID, oid, tlv};
use super::{ConvertError, Converted, ObjectEncoding, chain, pem, pkcs12, pkcs12_write};

/// What `objectFormat: pfx` makes of a PEM-stored certificate's secret, before `objectEncoding`.
pub fn secret_contents(value: &str, encoding: ObjectEncoding) -> Result<Converted, ConvertError> {
    match encoding {
        // As the Go provider: the PEM, unchanged. Changing it would change a working mount.
        ObjectEncoding::Utf8 => Ok(Converted {
            contents: Zeroizing::new(value.as_bytes().to_vec()),
            warning: Some(
                "objectFormat pfx: the certificate is stored as PEM (application/x-pem-file), so the PEM is \
                 written unchanged, as the Go provider does; add objectEncoding: base64 to get a PKCS#12 \
                 (.pfx) file built from it"
                    .to_owned(),
            ),
        }),
        ObjectEncoding::Base64 => {
            let der_bytes = build(value).map_err(ConvertError::PemAsPfx)?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(der_bytes.as_slice());
            Ok(Converted {
                contents: Zeroizing::new(b64.into_bytes()),
                warning: None,
            })
        }
        ObjectEncoding::Hex => Err(ConvertError::PemAsPfx(
            "objectFormat pfx cannot be combined with objectEncoding hex; use objectEncoding base64 for a \
             binary PKCS#12 (.pfx) file built from the PEM, or leave objectFormat out for the PEM itself"
                .to_owned(),
        )),
    }
}

/// Frames a reason: what was asked and why it cannot be done.
fn cannot(reason: &str) -> String {
    format!(
        "objectFormat pfx with objectEncoding base64 builds a PKCS#12 file from it, but {reason}"
    )
}

/// The PKCS#12 (DER) of the PEM's one private key and its certificates, the key's own first.
fn build(pem_text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let blocks = pem::decode_all(pem_text.as_bytes());
    let mut keys: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut certs: Vec<Vec<u8>> = Vec::new();
    for block in &blocks {
        if block.headers.contains_key("Proc-Type") || block.label == "ENCRYPTED PRIVATE KEY" {
            return Err(cannot(
                "its private key is encrypted; re-import the certificate with an unencrypted key (Key Vault \
                 keeps it protected itself)",
            ));
        }
        match block.label.as_str() {
            "PRIVATE KEY" => keys.push(block.der.clone()),
            "RSA PRIVATE KEY" => keys.push(pkcs8_of(RSA_ENCRYPTION_OID, &block.der, true)),
            "EC PRIVATE KEY" => keys.push(pkcs8_of(EC_PUBLIC_KEY_OID, &block.der, false)),
            "CERTIFICATE" => certs.push(block.der.to_vec()),
            // EC PARAMETERS and the like carry nothing a PKCS#12 holds.
            _ => {}
        }
    }
    let key = match keys.as_slice() {
        [key] => key,
        [] => {
            return Err(cannot(
                "the PEM holds no private key (a certificate whose key is not exportable has none in its \
                 secret); make the key exportable in the certificate's policy and create a new version, or \
                 mount the certificate alone with objectType cert",
            ));
        }
        more => {
            return Err(cannot(&format!(
                "the PEM holds {} private keys where a certificate has one; re-import it with its own key only",
                more.len()
            )));
        }
    };
    if certs.is_empty() {
        return Err(cannot(
            "the PEM holds no certificate; re-import the certificate with its key and certificate chain",
        ));
    }
    let key = pkcs12::normalize_key_in(key, "in the PEM").map_err(|reason| cannot(&reason))?;
    let leaf = leaf_index(&key, &certs)?;
    let ordered: Vec<Vec<u8>> = leaf_first(&certs, leaf)
        .into_iter()
        .map(|i| certs[i].clone())
        .collect();
    pkcs12_write::write(&key, &ordered)
        .map_err(|reason| cannot(&format!("the PKCS#12 could not be written: {reason}")))
}

/// A traditional (PKCS#1 RSA or SEC1 EC) key wrapped in PKCS#8: the curve of an EC key stays in its
/// ECPrivateKey, where [`pkcs12::normalize_key_in`] finds it.
fn pkcs8_of(algorithm_oid: &[u8], inner: &[u8], null_parameters: bool) -> Zeroizing<Vec<u8>> {
    let version = tlv(0x02, &[0]);
    let algorithm = if null_parameters {
        super::der_writer::sequence(&[&oid(algorithm_oid), &tlv(NULL, &[])])
    } else {
        super::der_writer::sequence(&[&oid(algorithm_oid)])
    };
    let wrapped = Zeroizing::new(tlv(OCTET_STRING, inner));
    let content = Zeroizing::new([version.as_slice(), &algorithm, &wrapped].concat());
    Zeroizing::new(tlv(super::der_writer::SEQUENCE, &content))
}

/// The public key of a normalized PKCS#8 key, as a certificate's subjectPublicKey holds it: the
/// RSAPublicKey of RSA, the uncompressed point of EC.
fn public_key(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8).ok()?;
    let inner = info.private_key.as_bytes();
    match info.algorithm.oid.as_bytes() {
        RSA_ENCRYPTION_OID => {
            let elements: Vec<der::AnyRef<'_>> = Vec::from_der(inner).ok()?;
            let (n, e) = (elements.get(1)?, elements.get(2)?);
            let mut parts = Vec::new();
            der::Encode::encode_to_vec(n, &mut parts).ok()?;
            der::Encode::encode_to_vec(e, &mut parts).ok()?;
            Some(tlv(super::der_writer::SEQUENCE, &parts))
        }
        EC_PUBLIC_KEY_OID => {
            let ec = sec1::EcPrivateKey::from_der(inner).ok()?;
            ec.public_key.map(<[u8]>::to_vec)
        }
        _ => None,
    }
}

/// The index of the certificate the key belongs to.
fn leaf_index(key: &[u8], certs: &[Vec<u8>]) -> Result<usize, String> {
    let public = public_key(key)
        .ok_or_else(|| cannot("its private key's public part could not be derived"))?;
    for (i, der_bytes) in certs.iter().enumerate() {
        let cert = Certificate::from_der(der_bytes).map_err(|e| {
            cannot(&format!(
                "certificate {} of the PEM is not valid X.509 ({e}); re-import the certificate",
                i + 1
            ))
        })?;
        let spki = cert.tbs_certificate().subject_public_key_info();
        if spki.subject_public_key.raw_bytes() == public.as_slice() {
            return Ok(i);
        }
    }
    Err(cannot(&format!(
        "its private key belongs to none of its {} certificate(s); re-import the certificate with the key \
         that was issued with it",
        certs.len()
    )))
}

/// Certificate indexes, the key's certificate first: the chain order when the chain is complete and
/// starts there (as `--construct-pem-chain` orders PEM output), otherwise the rest in PEM order.
fn leaf_first(certs: &[Vec<u8>], leaf: usize) -> Vec<usize> {
    if let Ok(ordered) = chain::order(certs)
        && ordered.complete
        && ordered.order.first() == Some(&leaf)
    {
        return ordered.order;
    }
    std::iter::once(leaf)
        .chain((0..certs.len()).filter(|&i| i != leaf))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use der::Encode as _;
    use sha1::Digest as _;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
    /// Key Vault's PEM of an RSA 2048 certificate (Azure SDK for C++ recordings).
    const RSA: &str = "cpp__KeyVaultCertificateClientTest.DownloadImportPem__005.json";
    /// Key Vault's PEM of an EC P-521 certificate (Azure SDK for .NET recordings).
    const P521: &str = "net__DownloadECDsaCertificateSignRemoteVerifyLocal_application_x-pem-file_P-521___004.json";

    fn recorded(name: &str) -> String {
        let path = format!(
            "{}/tests/data/vectors/keyvault/b_get_secret_pem/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v["response"]["body"]["contentType"],
            "application/x-pem-file"
        );
        v["response"]["body"]["value"].as_str().unwrap().to_owned()
    }

    /// A P-256 leaf under a P-256 intermediate under a P-384 root, in the PEM out of order (key,
    /// root, leaf, intermediate), and the certificates in the order the PKCS#12 must hold them.
    fn chain() -> (String, Vec<Vec<u8>>) {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let ca_params = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            p.use_authority_key_identifier_extension = true;
            p
        };
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let root = CertifiedIssuer::self_signed(ca_params("root"), root_key).unwrap();
        let int_key = KeyPair::generate().unwrap();
        let int = CertifiedIssuer::signed_by(ca_params("intermediate"), int_key, &root).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["web.example".to_owned()]).unwrap();
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&leaf_key, &int).unwrap();
        let pem_text = format!(
            "{}{}{}{}",
            leaf_key.serialize_pem(),
            root.pem(),
            leaf.pem(),
            int.pem()
        );
        let order = vec![leaf.der().to_vec(), int.der().to_vec(), root.der().to_vec()];
        (pem_text, order)
    }

    /// The binary PKCS#12, as `objectEncoding: base64` writes it.
    fn pfx(pem_text: &str) -> Vec<u8> {
        let out =
            secret_contents(pem_text, ObjectEncoding::Base64).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.warning.is_none());
        B64.decode(out.contents.as_slice()).unwrap()
    }

    fn blocks(pem_text: &str, label: &str) -> Vec<Vec<u8>> {
        pem::decode_all(pem_text.as_bytes())
            .into_iter()
            .filter(|b| b.label == label)
            .map(|b| b.der.to_vec())
            .collect()
    }

    /// The normalized key of a PEM's first PRIVATE KEY block.
    fn key_of(pem_text: &str) -> Vec<u8> {
        pkcs12::normalize_key(&blocks(pem_text, "PRIVATE KEY")[0])
            .unwrap()
            .to_vec()
    }

    /// Every case: the PEM, and its certificates in PKCS#12 order.
    fn cases() -> Vec<(&'static str, String, Vec<Vec<u8>>)> {
        let rsa = recorded(RSA);
        let p521 = recorded(P521);
        let (chained, order) = chain();
        vec![
            ("rsa", rsa.clone(), blocks(&rsa, "CERTIFICATE")),
            ("p521", p521.clone(), blocks(&p521, "CERTIFICATE")),
            ("chain", chained, order),
        ]
    }

    #[test]
    fn our_reader_reads_back_the_key_and_the_chain_leaf_first() {
        for (name, pem_text, certs) in cases() {
            let der_bytes = pfx(&pem_text);
            let decoded = pkcs12::decode(&B64.encode(&der_bytes)).unwrap();
            assert_eq!(decoded.keys.len(), 1, "{name}");
            assert_eq!(decoded.keys[0].as_slice(), key_of(&pem_text), "{name}");
            assert_eq!(decoded.certs, certs, "{name}");
        }
    }

    /// The bytes depend on the certificate only: no churn across Mounts, and the traditional key
    /// forms give exactly the file of their PKCS#8 form.
    #[test]
    fn the_same_certificate_gives_the_same_bytes_whatever_the_key_form() {
        let rsa = recorded(RSA);
        let first = pfx(&rsa);
        assert_eq!(pfx(&rsa), first);
        let pkcs8 = blocks(&rsa, "PRIVATE KEY").remove(0);
        let info = pkcs8::PrivateKeyInfoRef::from_der(&pkcs8).unwrap();
        let pkcs1 = pem::encode("RSA PRIVATE KEY", info.private_key.as_bytes());
        let cert = pem::encode("CERTIFICATE", &blocks(&rsa, "CERTIFICATE")[0]);
        assert_eq!(pfx(&format!("{pkcs1}{cert}")), first);

        // SEC1 as OpenSSL writes it: the curve inside, after an EC PARAMETERS block.
        let p521 = recorded(P521);
        let normalized = key_of(&p521);
        let info = pkcs8::PrivateKeyInfoRef::from_der(&normalized).unwrap();
        let ec = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).unwrap();
        let curve = info.algorithm.parameters.unwrap().to_der().unwrap();
        let sec1_der = super::super::der_writer::sequence(&[
            &[0x02, 0x01, 0x01],
            &tlv(OCTET_STRING, ec.private_key),
            &tlv(0xa0, &curve),
            &tlv(
                0xa1,
                &super::super::der_writer::bit_string(ec.public_key.unwrap()),
            ),
        ]);
        let cert = pem::encode("CERTIFICATE", &blocks(&p521, "CERTIFICATE")[0]);
        let traditional = format!(
            "{}{}{cert}",
            pem::encode("EC PARAMETERS", &curve),
            pem::encode("EC PRIVATE KEY", &sec1_der)
        );
        assert_eq!(pfx(&traditional), pfx(&p521));
        assert_ne!(pfx(&p521), first, "salts differ between certificates");
    }

    /// `openssl pkcs12 -info -noenc -passin pass:` (OpenSSL 3) reads every case: the MAC and both
    /// encryptions are what we claim, and it prints our key and certificates.
    #[test]
    fn openssl_reads_it_with_the_empty_password() {
        for (name, pem_text, certs) in cases() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.pfx");
            std::fs::write(&path, pfx(&pem_text)).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["pkcs12", "-info", "-noenc", "-passin", "pass:", "-in"])
                .arg(&path)
                .output()
                .unwrap_or_else(|e| {
                    panic!("this test needs the openssl command (apt-get install openssl): {e}")
                });
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{name}: {stderr}");
            let all = format!("{stdout}{stderr}");
            assert!(all.contains("MAC: sha256, Iteration 2048"), "{name}: {all}");
            let pbes2 = "PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256";
            assert!(
                all.contains(&format!("PKCS7 Encrypted data: {pbes2}")),
                "{name}: {all}"
            );
            assert!(
                all.contains(&format!("Shrouded Keybag: {pbes2}")),
                "{name}: {all}"
            );
            assert_eq!(
                blocks(&stdout, "PRIVATE KEY"),
                [key_of(&pem_text)],
                "{name}"
            );
            assert_eq!(blocks(&stdout, "CERTIFICATE"), certs, "{name}");
            let id: Vec<String> = sha1::Sha1::digest(&certs[0])
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            let id = format!("localKeyID: {}", id.join(" "));
            assert_eq!(all.matches(&id).count(), 2, "{name}: key and leaf: {all}");
        }
    }

    fn error(pem_text: &str) -> String {
        secret_contents(pem_text, ObjectEncoding::Base64)
            .err()
            .unwrap()
            .to_string()
    }

    #[test]
    fn unusable_pems_say_what_is_wrong_and_what_to_do() {
        let rsa = recorded(RSA);
        let p521 = recorded(P521);
        let (rsa_key, rsa_cert) = (
            pem::encode("PRIVATE KEY", &blocks(&rsa, "PRIVATE KEY")[0]),
            pem::encode("CERTIFICATE", &blocks(&rsa, "CERTIFICATE")[0]),
        );
        let p521_cert = pem::encode("CERTIFICATE", &blocks(&p521, "CERTIFICATE")[0]);
        let cases = [
            (rsa_cert.clone(), "holds no private key"),
            (rsa_key.clone(), "holds no certificate"),
            (
                format!("{rsa_key}{p521_cert}"),
                "belongs to none of its 1 certificate",
            ),
            (
                format!("{rsa_key}{rsa_key}{rsa_cert}"),
                "holds 2 private keys",
            ),
            (
                format!(
                    "{}{rsa_cert}",
                    pem::encode("ENCRYPTED PRIVATE KEY", &[1, 2, 3])
                ),
                "encrypted",
            ),
            (
                format!(
                    "{rsa_key}{}",
                    pem::encode("CERTIFICATE", &[0x30, 0x03, 1, 2, 3])
                ),
                "certificate 1 of the PEM is not valid X.509",
            ),
            (
                format!("{}{rsa_cert}", pem::encode("PRIVATE KEY", &[0x30, 0x00])),
                "a private key in the PEM is not valid PKCS#8",
            ),
            (String::new(), "holds no private key"),
        ];
        let key_text: String = rsa_key.lines().nth(3).unwrap().to_owned();
        for (pem_text, want) in cases {
            let err = error(&pem_text);
            assert!(
                err.starts_with("the certificate is stored as PEM (contentType application/x-pem-file): objectFormat pfx with objectEncoding base64 builds a PKCS#12"),
                "{err}"
            );
            assert!(err.contains(want), "{want}: {err}");
            assert!(!err.contains(&key_text), "no key material: {err}");
        }
        assert!(error(&rsa_cert).contains("objectType cert"));
    }

    #[test]
    fn utf8_keeps_the_pem_as_the_go_provider_and_hex_is_refused() {
        let rsa = recorded(RSA);
        let out = secret_contents(&rsa, ObjectEncoding::Utf8).unwrap();
        assert_eq!(out.contents.as_slice(), rsa.as_bytes());
        assert!(out.warning.unwrap().contains("objectEncoding: base64"));
        let err = secret_contents(&rsa, ObjectEncoding::Hex)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("stored as PEM") && err.contains("use objectEncoding base64"),
            "{err}"
        );
    }
}
