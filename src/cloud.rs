//! Azure clouds: which Entra authority and Key Vault DNS suffix/resource a request uses (README, "Configuration").
//!
//! The named clouds are constants. `AzureStackCloud` reads its environment file on every request
//! (`cloudEnvFileName`, else `AZURE_ENVIRONMENT_FILEPATH`) and never touches process state, unlike
//! the Go provider, which sets the environment variable per Mount and races between Mounts.

use std::path::Path;

/// A cloud by name, as accepted by `cloudName` and `--cloud-name` (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CloudName {
    /// `AzurePublicCloud`, `AzureCloud`.
    #[default]
    Public,
    /// `AzureUSGovernmentCloud`, `AzureUSGovernment`.
    UsGovernment,
    /// `AzureChinaCloud`.
    China,
    /// `AzureGermanCloud` (retired).
    German,
    /// `AzureStackCloud`: endpoints from an environment file.
    Stack,
}

/// The values accepted for `cloudName`, for error messages.
pub const CLOUD_NAMES: &str = "AzurePublicCloud (default), AzureCloud, AzureUSGovernmentCloud, \
     AzureUSGovernment, AzureChinaCloud, AzureGermanCloud, AzureStackCloud";

impl std::str::FromStr for CloudName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "azurepubliccloud" | "azurecloud" => Ok(Self::Public),
            "azureusgovernmentcloud" | "azureusgovernment" => Ok(Self::UsGovernment),
            "azurechinacloud" => Ok(Self::China),
            "azuregermancloud" => Ok(Self::German),
            "azurestackcloud" => Ok(Self::Stack),
            _ => Err(format!("unknown cloud {s:?}; valid values: {CLOUD_NAMES}")),
        }
    }
}

/// Endpoints of one cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEnvironment {
    /// Entra ID authority host, with a trailing slash, e.g. `https://login.microsoftonline.com/`.
    pub authority: String,
    /// Key Vault DNS suffix, e.g. `vault.azure.net`.
    pub key_vault_dns_suffix: String,
    /// Key Vault resource (token audience), e.g. `https://vault.azure.net`, no trailing slash.
    pub key_vault_resource: String,
}

impl CloudEnvironment {
    fn fixed(authority: &str, suffix: &str) -> Self {
        Self {
            authority: authority.to_owned(),
            key_vault_dns_suffix: suffix.to_owned(),
            key_vault_resource: format!("https://{suffix}"),
        }
    }

    /// OAuth2 scope for Key Vault tokens.
    pub fn key_vault_scope(&self) -> String {
        format!("{}/.default", self.key_vault_resource)
    }

    /// Base URL of a vault (no trailing slash).
    pub fn vault_url(&self, vault: &str) -> String {
        format!(
            "https://{}.{}",
            vault.to_ascii_lowercase(),
            self.key_vault_dns_suffix
        )
    }
}

/// Why a cloud could not be resolved. The messages are shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// `AzureStackCloud` without a file.
    #[error(
        "cloudName is AzureStackCloud but no environment file is given: set cloudEnvFileName in the \
         SecretProviderClass (or AZURE_ENVIRONMENT_FILEPATH on the provider) to a JSON file with \
         activeDirectoryEndpoint, keyVaultEndpoint and keyVaultDNSSuffix"
    )]
    MissingEnvFile,
    /// The file could not be read.
    #[error("cloudEnvFileName: reading {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The file is not JSON.
    #[error("cloudEnvFileName: {path} is not valid JSON: {reason}")]
    Json {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// A required key is missing.
    #[error(
        "cloudEnvFileName: {path} has no {field}; the file needs activeDirectoryEndpoint (e.g. \
         \"https://login.example/\") and keyVaultDNSSuffix (e.g. \"vault.example\")"
    )]
    MissingField {
        /// The file.
        path: String,
        /// The missing key.
        field: &'static str,
    },
    /// A key has an unusable value.
    #[error("cloudEnvFileName: {path}: {field} {value:?} {problem}")]
    BadField {
        /// The file.
        path: String,
        /// The key.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Resolves the cloud for one request. `env_file` is `cloudEnvFileName`; `env_var_file` is the value
/// of `AZURE_ENVIRONMENT_FILEPATH`, passed in so that this stays a function of its inputs.
pub async fn resolve(
    name: CloudName,
    env_file: Option<&str>,
    env_var_file: Option<&str>,
) -> Result<CloudEnvironment, CloudError> {
    match name {
        CloudName::Public => Ok(CloudEnvironment::fixed(
            "https://login.microsoftonline.com/",
            "vault.azure.net",
        )),
        CloudName::UsGovernment => Ok(CloudEnvironment::fixed(
            "https://login.microsoftonline.us/",
            "vault.usgovcloudapi.net",
        )),
        CloudName::China => Ok(CloudEnvironment::fixed(
            "https://login.chinacloudapi.cn/",
            "vault.azure.cn",
        )),
        CloudName::German => Ok(CloudEnvironment::fixed(
            "https://login.microsoftonline.de/",
            "vault.microsoftazure.de",
        )),
        CloudName::Stack => {
            let path = env_file
                .filter(|p| !p.is_empty())
                .or(env_var_file.filter(|p| !p.is_empty()))
                .ok_or(CloudError::MissingEnvFile)?;
            let text = read_environment_file(path).await?;
            parse_environment_file(path, &text)
        }
    }
}

/// Largest environment file read: the real ones are a few hundred bytes.
pub const MAX_ENVIRONMENT_FILE: u64 = 64 * 1024;

/// Reads an environment file: a regular file of at most [`MAX_ENVIRONMENT_FILE`] bytes. A device
/// (`/dev/zero`), a FIFO or a huge file is refused instead of read, so that a wrong path cannot grow
/// memory or block a thread past the Mount's deadline.
async fn read_environment_file(path: &str) -> Result<String, CloudError> {
    use tokio::io::AsyncReadExt as _;
    let read_error = |reason: String| CloudError::Read {
        path: path.to_owned(),
        reason,
    };
    let meta = tokio::fs::metadata(Path::new(path))
        .await
        .map_err(|e| read_error(e.to_string()))?;
    if !meta.is_file() {
        return Err(read_error("not a regular file".to_owned()));
    }
    if meta.len() > MAX_ENVIRONMENT_FILE {
        return Err(read_error(format!(
            "{} bytes; an environment file has at most {MAX_ENVIRONMENT_FILE}",
            meta.len()
        )));
    }
    let file = tokio::fs::File::open(Path::new(path))
        .await
        .map_err(|e| read_error(e.to_string()))?;
    // The file may have grown since the check: read no more than the cap plus one byte.
    let mut bytes = Vec::new();
    file.take(MAX_ENVIRONMENT_FILE + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| read_error(e.to_string()))?;
    if bytes.len() as u64 > MAX_ENVIRONMENT_FILE {
        return Err(read_error(format!(
            "more than {MAX_ENVIRONMENT_FILE} bytes; an environment file is a few hundred"
        )));
    }
    String::from_utf8(bytes).map_err(|_| read_error("not UTF-8 text".to_owned()))
}

/// Parses an Azure Stack environment file; keys are matched case-insensitively like Go's
/// `encoding/json`.
pub fn parse_environment_file(path: &str, text: &str) -> Result<CloudEnvironment, CloudError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| CloudError::Json {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(CloudError::Json {
            path: path.to_owned(),
            reason: "expected a JSON object".to_owned(),
        });
    };
    let get = |field: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let authority = get("activeDirectoryEndpoint").ok_or(CloudError::MissingField {
        path: path.to_owned(),
        field: "activeDirectoryEndpoint",
    })?;
    let suffix = get("keyVaultDNSSuffix").ok_or(CloudError::MissingField {
        path: path.to_owned(),
        field: "keyVaultDNSSuffix",
    })?;
    if !authority.starts_with("https://") {
        return Err(CloudError::BadField {
            path: path.to_owned(),
            field: "activeDirectoryEndpoint",
            value: authority.to_owned(),
            problem: "must be an https:// URL",
        });
    }
    let suffix = suffix.trim_start_matches('.');
    if suffix.contains('/') || suffix.contains(':') {
        return Err(CloudError::BadField {
            path: path.to_owned(),
            field: "keyVaultDNSSuffix",
            value: suffix.to_owned(),
            problem: "must be a bare DNS suffix such as vault.example",
        });
    }
    let resource = get("keyVaultEndpoint")
        .map(|e| e.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("https://{suffix}"));
    let authority = if authority.ends_with('/') {
        authority.to_owned()
    } else {
        format!("{authority}/")
    };
    Ok(CloudEnvironment {
        authority,
        key_vault_dns_suffix: suffix.to_owned(),
        key_vault_resource: resource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_aliases_match() {
        assert_eq!("azurecloud".parse::<CloudName>(), Ok(CloudName::Public));
        assert_eq!(
            "AzurePublicCloud".parse::<CloudName>(),
            Ok(CloudName::Public)
        );
        assert_eq!(
            "AZUREUSGOVERNMENT".parse::<CloudName>(),
            Ok(CloudName::UsGovernment)
        );
        assert_eq!("AzureChinaCloud".parse::<CloudName>(), Ok(CloudName::China));
        assert_eq!("AzureStackCloud".parse::<CloudName>(), Ok(CloudName::Stack));
        let err = "Mars".parse::<CloudName>().unwrap_err();
        assert!(err.contains("AzureUSGovernmentCloud"), "{err}");
    }

    #[tokio::test]
    async fn named_clouds_have_their_endpoints() {
        let gov = resolve(CloudName::UsGovernment, None, None).await.unwrap();
        assert_eq!(gov.authority, "https://login.microsoftonline.us/");
        assert_eq!(
            gov.key_vault_scope(),
            "https://vault.usgovcloudapi.net/.default"
        );
        assert_eq!(gov.vault_url("KV1"), "https://kv1.vault.usgovcloudapi.net");
        let cn = resolve(CloudName::China, None, None).await.unwrap();
        assert_eq!(cn.key_vault_dns_suffix, "vault.azure.cn");
    }

    #[test]
    fn stack_file_keys_are_case_insensitive() {
        let env = parse_environment_file(
            "f.json",
            r#"{"name":"AzureStackCloud","ACTIVEDIRECTORYENDPOINT":"https://login.example",
                "keyVaultEndpoint":"https://vault.example/","keyvaultdnssuffix":"vault.example"}"#,
        )
        .unwrap();
        assert_eq!(env.authority, "https://login.example/");
        assert_eq!(env.key_vault_resource, "https://vault.example");
        assert_eq!(env.key_vault_dns_suffix, "vault.example");
    }

    #[test]
    fn stack_file_errors_name_the_field() {
        let err = parse_environment_file("f.json", r#"{"keyVaultDNSSuffix":"v.example"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("activeDirectoryEndpoint"), "{err}");
        let err = parse_environment_file("f.json", "[")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    /// Regression: `/dev/zero` as the environment file grew memory until the pod was killed.
    #[tokio::test]
    async fn devices_and_huge_files_are_refused_without_reading_them() {
        let err = resolve(CloudName::Stack, Some("/dev/zero"), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("not a regular file"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_ENVIRONMENT_FILE as usize + 1]).unwrap();
        let err = resolve(CloudName::Stack, big.to_str(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most"), "{err}");
    }

    #[tokio::test]
    async fn stack_without_file_says_how_to_fix() {
        let err = resolve(CloudName::Stack, None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cloudEnvFileName"), "{err}");
        let err = resolve(CloudName::Stack, Some("/nonexistent/x.json"), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/x.json"), "{err}");
    }
}
