//! The bounded classes of failure that label metrics and log fields: never error text, whose
//! unbounded values would make the series count explode.

/// Why something failed, as a bounded set for labels and log fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The SecretProviderClass or request is invalid.
    Invalid,
    /// Entra ID, IMDS or Key Vault refused the credential or token.
    Unauthenticated,
    /// The identity lacks a role or access policy, or the object is disabled.
    Forbidden,
    /// The vault, object or version does not exist.
    NotFound,
    /// 429: the vault or Entra is throttling.
    Throttled,
    /// 5xx from Key Vault, Entra or IMDS.
    ServerError,
    /// The peer could not be reached or the connection failed.
    Transport,
    /// A host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// A deadline passed.
    Timeout,
    /// The content could not be converted (PFX, JWK, encoding) or is too large.
    Conversion,
    /// The provider lacks a setting the mode needs.
    Configuration,
    /// The caller went away before the work finished.
    Cancelled,
}

impl ErrorClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Transport => "transport",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Conversion => "conversion",
            Self::Configuration => "configuration",
            Self::Cancelled => "cancelled",
        }
    }

    /// The class of an HTTP error status.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            429 => Self::Throttled,
            500.. => Self::ServerError,
            _ => Self::Invalid,
        }
    }

    /// Every class, for documentation and tests.
    pub const ALL: [Self; 13] = [
        Self::Invalid,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::Throttled,
        Self::ServerError,
        Self::Transport,
        Self::Dns,
        Self::Tls,
        Self::Timeout,
        Self::Conversion,
        Self::Configuration,
        Self::Cancelled,
    ];
}
