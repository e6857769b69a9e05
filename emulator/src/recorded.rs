//! The real error bodies the emulator answers with. They are the recorded exchanges kept in the
//! repository's `tests/data/vectors/keyvault/` (one copy of the data, with its provenance there),
//! embedded at compile time so a standalone emulator needs no files; only names, ids and assertion
//! claims are substituted into them.
//!
//! Codes without a recording (AADSTS700211, 700016, 90002, 700024, 700027, 500011, 1002012,
//! 900144, AKV10022, AKV10032, `[TokenExpired]`) reuse the recorded Entra envelope with the message
//! text users report for them.

use serde_json::Value;

macro_rules! vector {
    ($rel:literal) => {
        (
            $rel,
            include_str!(concat!("../../tests/data/vectors/keyvault/", $rel)),
        )
    };
}

const CHALLENGE: (&str, &str) = vector!(
    "g_401_challenge/net__DownloadECDsaCertificateSignRemoteVerifyLocal_application_x-pem-file_P-521___000.json"
);
const SECRET_NOT_FOUND: (&str, &str) =
    vector!("h_errors/cpp__KeyVaultSecretClientTest.RecoverSecret__007.json");
const KEY_NOT_FOUND: (&str, &str) = vector!("h_errors/cpp__KeyVaultKeyClient.BackupKey__006.json");
const CERT_NOT_FOUND: (&str, &str) =
    vector!("h_errors/cpp__KeyVaultCertificateClientTest.GetDeletedCertificate__009.json");
const DISABLED: (&str, &str) = vector!("h_errors/node__keyVault-secret-tests@2018-06-27__008.json");
const RBAC: (&str, &str) = vector!(
    "h_errors/observed_in_issues/issue__piyushsachdeva_Terraform_AKS_2__403_ForbiddenByRbac_get.json"
);
const ACCESS_DENIED: (&str, &str) =
    vector!("h_errors/observed_in_issues/issue__external-secrets_586__403_AccessDenied_get.json");
const THROTTLED: (&str, &str) =
    vector!("h_errors/observed_in_issues/issue__vcsjones_AzureSignTool_219__429_Throttled.json");
const FIC_MISMATCH: (&str, &str) = vector!(
    "i_entra_token/observed_in_issues/issue__Azure_azure-workload-identity_616__400_AADSTS70021.json"
);
const BAD_SECRET: (&str, &str) = vector!("i_entra_token/net__GetTokenIncorrectPassword__000.json");
const TOKEN_OK: (&str, &str) =
    vector!("i_entra_token/net__VerifyViaMockK8TokenExchangeEnvironment__000.json");

/// The recordings the emulator uses, relative to `tests/data/vectors/keyvault/`.
pub const VECTOR_FILES: &[&str] = &[
    CHALLENGE.0,
    SECRET_NOT_FOUND.0,
    KEY_NOT_FOUND.0,
    CERT_NOT_FOUND.0,
    DISABLED.0,
    RBAC.0,
    ACCESS_DENIED.0,
    THROTTLED.0,
    FIC_MISMATCH.0,
    BAD_SECRET.0,
    TOKEN_OK.0,
];

/// A recorded file that is not what the emulator expects (a build problem, reported at start).
#[derive(Debug, thiserror::Error)]
#[error("recorded vector {file}: {problem}")]
pub struct RecordedError {
    file: &'static str,
    problem: String,
}

/// The parsed bodies; loaded once per emulator at start.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub challenge: Value,
    /// (body, the object name in its message, to be replaced).
    pub secret_not_found: (Value, &'static str),
    pub key_not_found: (Value, &'static str),
    pub cert_not_found: (Value, &'static str),
    pub disabled: Value,
    pub rbac: Value,
    pub access_denied: Value,
    pub throttled: Value,
    pub fic_mismatch: Value,
    pub bad_secret: (u16, Value),
    pub token_ok: Value,
}

fn exchange((file, text): (&'static str, &str)) -> Result<Value, RecordedError> {
    let v: Value = serde_json::from_str(text).map_err(|e| RecordedError {
        file,
        problem: e.to_string(),
    })?;
    if !v["response"]["body"].is_object() {
        return Err(RecordedError {
            file,
            problem: "no response.body object".into(),
        });
    }
    Ok(v)
}

fn body(file: (&'static str, &str)) -> Result<Value, RecordedError> {
    Ok(exchange(file)?["response"]["body"].take())
}

impl Recorded {
    pub(crate) fn load() -> Result<Self, RecordedError> {
        let bad = exchange(BAD_SECRET)?;
        let status = bad["response"]["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(401);
        Ok(Self {
            challenge: body(CHALLENGE)?,
            secret_not_found: (body(SECRET_NOT_FOUND)?, "RecoverSecret"),
            key_not_found: (body(KEY_NOT_FOUND)?, "BackupKey"),
            cert_not_found: (body(CERT_NOT_FOUND)?, "GetDeletedCertificate"),
            disabled: body(DISABLED)?,
            rbac: body(RBAC)?,
            access_denied: body(ACCESS_DENIED)?,
            throttled: body(THROTTLED)?,
            fic_mismatch: body(FIC_MISMATCH)?,
            bad_secret: (status, bad["response"]["body"].clone()),
            token_ok: body(TOKEN_OK)?,
        })
    }
}

/// Replaces the text between the first `start` and the next `end` after it.
pub(crate) fn replace_between(s: &str, start: &str, end: &str, new: &str) -> String {
    let Some(i) = s.find(start).map(|i| i + start.len()) else {
        return s.to_owned();
    };
    let Some(j) = s[i..].find(end).map(|j| i + j) else {
        return s.to_owned();
    };
    format!("{}{new}{}", &s[..i], &s[j..])
}

/// `body` with `error.message` rewritten by `f`.
pub(crate) fn with_message(mut body: Value, f: impl FnOnce(&str) -> String) -> Value {
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    body["error"]["message"] = f(&message).into();
    body
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_recording_loads() {
        let r = super::Recorded::load().unwrap();
        assert_eq!(r.throttled["error"]["code"], "Throttled");
        assert_eq!(r.bad_secret.0, 401);
        assert_eq!(super::VECTOR_FILES.len(), 11);
    }

    #[test]
    fn replace_between_replaces_only_the_first_span() {
        assert_eq!(
            super::replace_between("a 'x' b 'y'", "'", "'", "z"),
            "a 'z' b 'y'"
        );
        assert_eq!(super::replace_between("abc", "[", "]", "z"), "abc");
    }
}
