//! A glob as `objectName` (`app1-*`): the Mount lists the vault's objects of that type and mounts
//! each enabled one whose name matches. Key Vault names are letters, digits and '-' only, so `*` and
//! `?` can never be part of a real name: a pattern is never mistaken for an object.
//!
//! Certificate-backed secrets and keys (Key Vault's `managed: true`) are left out unless the entry
//! says `includeManaged: "true"`: listing secrets returns the secret behind every certificate,
//! which holds the certificate's private key, and a pattern such as `*` must not mount every
//! certificate's private key by surprise.

use super::{Entry, RawObject};
use crate::keyvault::ObjectKind;
use crate::mount::paths;

/// What a pattern entry adds to an object entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternOptions {
    /// `includeManaged: "true"`.
    pub include_managed: bool,
}

/// Whether `objectName` is a pattern.
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Whether `name` matches `pattern`: `*` any run of characters (also none), `?` one character,
/// ASCII case ignored (Key Vault names are case-insensitive).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen and the name position it was tried at: on a mismatch, let it eat one more.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&n[ni]) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

impl Entry<'_> {
    pub(super) fn check_pattern_name(&mut self, name: &str) {
        if !super::within_name_rules(name, b"*?") {
            let message = format!(
                "objectName {:?} is not a pattern of Key Vault object names (letters, digits, '-', \
                 '*' for any run of characters and '?' for one, at most 127)",
                name.escape_debug().to_string()
            );
            self.push("objectName", message);
        }
    }

    /// A pattern's `objectAlias` is a directory for its matches (`app1/`), or absent (each match
    /// under its own name at the volume's root). Returns the prefix put before each match's name.
    pub(super) fn pattern_alias(&mut self, written: Option<&str>) -> String {
        let Some(alias) = written else {
            return String::new();
        };
        let dir = alias.trim_end_matches('/');
        let problem = if !alias.ends_with('/') {
            Some(
                "must be a directory ending in '/' (a pattern matches several objects), e.g. app1/"
                    .to_owned(),
            )
        } else {
            paths::check(dir).err()
        };
        if let Some(problem) = problem {
            let message = format!("objectAlias {alias:?} {problem}");
            self.push("objectAlias", message);
        }
        format!("{dir}/")
    }

    /// The rules of a pattern entry; `includeManaged` anywhere else is an error, not ignored.
    pub(super) fn pattern_options(
        &mut self,
        raw: &RawObject,
        is_pattern: bool,
        kind: Option<ObjectKind>,
        has_version: bool,
        history: u32,
    ) -> Option<PatternOptions> {
        let include_managed = self.flag("includeManaged", &raw.include_managed);
        if !is_pattern {
            if include_managed {
                let message = "includeManaged only applies to a pattern as objectName (e.g. \
                               objectName: \"app1-*\")"
                    .to_owned();
                self.push("includeManaged", message);
            }
            return None;
        }
        if has_version {
            let message = "objectVersion cannot be used with a pattern: each matching object has \
                           its own versions; the latest of each is mounted"
                .to_owned();
            self.push("objectVersion", message);
        }
        if history > 1 {
            let message = "objectVersionHistory cannot be used with a pattern; list the object by \
                           name to mount its history"
                .to_owned();
            self.push("objectVersionHistory", message);
        }
        if include_managed && kind == Some(ObjectKind::Cert) {
            let message = "includeManaged applies to secret and key patterns (certificates \
                           themselves are never managed); remove it"
                .to_owned();
            self.push("includeManaged", message);
        }
        Some(PatternOptions { include_managed })
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(matches("app1-*", "app1-db"));
        assert!(matches("app1-*", "APP1-"));
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(matches("a*b", "abab"));
        assert!(matches("db-?", "db-1"));
        assert!(!matches("db-?", "db-12"));
        assert!(!matches("app1-*", "app2-db"));
        assert!(!matches("app1-*", "xapp1-db"));
        assert!(!matches("a*b", "abac"));
    }
}
