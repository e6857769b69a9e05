//! Ordering a PFX's certificates leaf → intermediates → root (`--construct-pem-chain`), exactly as the
//! Go provider's `fetchCertChains`: certificate i's parent is the first other certificate whose Subject
//! Key Identifier equals i's Authority Key Identifier (both present); the leaf is the one certificate
//! that is nobody's parent. When that does not give one chain through every certificate (several
//! leaves, none, a cycle, a missing intermediate), the original order is kept and the caller warns.

use der::Decode as _;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};

use super::ConvertError;

/// The result of ordering.
pub struct Ordered {
    /// Indexes into the input, in output order.
    pub order: Vec<usize>,
    /// `false` when the chain was incomplete and the input order was kept.
    pub complete: bool,
}

struct Ids {
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
}

fn key_ids(der: &[u8]) -> Result<Ids, ConvertError> {
    let cert = Certificate::from_der(der).map_err(|e| {
        ConvertError::Pkcs12(format!("a certificate in the PFX is not valid X.509 ({e})"))
    })?;
    let tbs = cert.tbs_certificate();
    let ski = tbs
        .get_extension::<SubjectKeyIdentifier>()
        .ok()
        .flatten()
        .map(|(_, ski)| ski.0.as_bytes().to_vec())
        .filter(|v| !v.is_empty());
    let aki = tbs
        .get_extension::<AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, aki)| aki.key_identifier.map(|k| k.as_bytes().to_vec()))
        .filter(|v| !v.is_empty());
    Ok(Ids { ski, aki })
}

/// Orders DER certificates leaf first.
pub fn order(certs: &[Vec<u8>]) -> Result<Ordered, ConvertError> {
    let ids = certs
        .iter()
        .map(|c| key_ids(c))
        .collect::<Result<Vec<_>, _>>()?;
    let n = certs.len();
    let keep = || Ordered {
        order: (0..n).collect(),
        complete: false,
    };
    if n <= 1 {
        return Ok(Ordered {
            order: (0..n).collect(),
            complete: true,
        });
    }
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut is_parent = vec![false; n];
    for i in 0..n {
        let Some(aki) = &ids[i].aki else { continue };
        if let Some(j) = (0..n).find(|&j| j != i && ids[j].ski.as_ref() == Some(aki)) {
            parent[i] = Some(j);
            is_parent[j] = true;
        }
    }
    let leaves: Vec<usize> = (0..n).filter(|&i| !is_parent[i]).collect();
    let [leaf] = leaves[..] else {
        return Ok(keep());
    };
    let mut order = Vec::with_capacity(n);
    let mut current = Some(leaf);
    while let Some(i) = current {
        if order.contains(&i) {
            return Ok(keep());
        }
        order.push(i);
        current = parent[i];
    }
    if order.len() != n {
        return Ok(keep());
    }
    Ok(Ordered {
        order,
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::pem;

    fn dir(name: &str) -> String {
        format!(
            "{}/tests/data/vectors/keyvault/go-provider-vectors/fetchCertChains/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn read(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    fn ders(pem_text: &[u8]) -> Vec<Vec<u8>> {
        pem::decode_all(pem_text)
            .into_iter()
            .map(|b| b.der.to_vec())
            .collect()
    }

    fn ordered_pem(input: &[u8]) -> (Vec<u8>, bool) {
        let certs = ders(input);
        let ordered = order(&certs).unwrap();
        let out = ordered
            .order
            .iter()
            .flat_map(|&i| pem::encode("CERTIFICATE", &certs[i]).into_bytes())
            .collect();
        (out, ordered.complete)
    }

    /// Every ordering listed in the Go test manifest gives the expected chain.
    #[test]
    fn go_provider_vectors() {
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/data/vectors/keyvault/go-provider-vectors/manifest.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let mut checked = 0;
        for v in manifest["vectors"].as_array().unwrap() {
            if v["kind"] != "cert_chain_ordering" {
                continue;
            }
            let test = v["go_test"].as_str().unwrap();
            let expected_file = v["expected"]
                .as_str()
                .map(|e| e.rsplit('/').next().unwrap().to_owned());
            let expected = read(&format!(
                "{}/{}",
                dir(test),
                expected_file.as_deref().unwrap_or("expectedCertChain.pem")
            ));
            for ordering in v["orderings"].as_array().unwrap() {
                let concat = ordering["input_concatenation"].as_str().unwrap();
                let input: Vec<u8> = concat
                    .split(" + ")
                    .flat_map(|name| read(&format!("{}/{}.pem", dir(test), name.trim())))
                    .collect();
                let (out, complete) = ordered_pem(&input);
                // Go returns an incomplete chain's input bytes unchanged; these fixtures are PEM files
                // with blank lines between them, which the PFX path never produces, so compare blocks.
                let expected = if complete {
                    expected.clone()
                } else {
                    ders(&expected)
                        .iter()
                        .flat_map(|d| pem::encode("CERTIFICATE", d).into_bytes())
                        .collect()
                };
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{test}: {concat}"
                );
                assert_eq!(
                    complete,
                    test != "TestFetchCertChainWarning",
                    "{test}: {concat}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 19, "{checked}");
    }

    proptest::proptest! {
        /// Any bag order of a complete chain gives the same leaf-to-root order.
        #[test]
        fn any_permutation_orders_the_same(perm in Just((0..4).collect::<Vec<usize>>()).prop_shuffle()) {
            let d = dir("TestFetchCertChainWithLeafMissingSKI");
            let certs: Vec<Vec<u8>> = ["serverCert", "intermediateCert2", "intermediateCert1", "rootCACert"]
                .iter()
                .flat_map(|n| ders(&read(&format!("{d}/{n}.pem"))))
                .collect();
            let shuffled: Vec<Vec<u8>> = perm.iter().map(|&i| certs[i].clone()).collect();
            let ordered = order(&shuffled).unwrap();
            proptest::prop_assert!(ordered.complete);
            let result: Vec<&Vec<u8>> = ordered.order.iter().map(|&i| &shuffled[i]).collect();
            proptest::prop_assert_eq!(result, certs.iter().collect::<Vec<_>>());
        }
    }

    use proptest::prelude::{Just, Strategy};

    /// Cross-signed CAs (each the other's issuer) have no leaf: the order is kept and the caller
    /// warns, where the Go provider reports "no leaf found".
    #[test]
    fn a_key_identifier_cycle_keeps_the_order() {
        let certs = ders(&read(&format!(
            "{}/src/convert/testdata/chain-cycle.pem",
            env!("CARGO_MANIFEST_DIR")
        )));
        assert_eq!(certs.len(), 2);
        for certs in [certs.clone(), vec![certs[1].clone(), certs[0].clone()]] {
            let ordered = order(&certs).unwrap();
            assert!(!ordered.complete);
            assert_eq!(ordered.order, vec![0, 1]);
        }
    }

    #[test]
    fn single_and_empty() {
        assert!(order(&[]).unwrap().complete);
        let one = ders(&read(&format!(
            "{}/rootCACert.pem",
            dir("TestFetchCertChain")
        )));
        assert_eq!(order(&one).unwrap().order, vec![0]);
        assert!(order(&[vec![1, 2, 3], one[0].clone()]).is_err());
    }
}
