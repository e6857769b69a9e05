//! `jmesPath` on a secret entry (the syntax of AWS's provider, which users moving between clouds
//! already write): each item names a JMESPath expression over the secret's JSON value and the file
//! its result is written to. The secret itself is still written under its own name or alias, as AWS
//! does. Expressions are compiled here so that a typo is found by validation (and `check`), not by
//! the Mount.

use serde::Deserialize;

use super::{Entry, RawObject, trimmed};
use crate::keyvault::ObjectKind;
use crate::mount::findings::ListItem;
use crate::mount::paths;

/// Items of one `jmesPath` list: far above real use, low enough to bound a Mount's work.
pub const MAX_JSON_KEYS: usize = 64;
/// Bytes of one `path`. The `jmespath` parser and interpreter recurse once per nesting level (`!!!a`,
/// `((a))`), so a long enough expression would overflow a thread's stack and abort the daemon: 128
/// one-byte levels measured well within a 2 MiB runtime thread even unoptimized (256 `!` overflow it),
/// and real paths (`creds.db[0].password`, `"connection-string"`) are far shorter.
pub const MAX_PATH_BYTES: usize = 128;

/// One `jmesPath` item as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawJsonKey {
    /// `path`: the JMESPath expression.
    pub path: Option<String>,
    /// `objectAlias`: the file (required).
    pub object_alias: Option<String>,
    /// `filePermission`: the file's mode (default: the object's).
    pub file_permission: Option<String>,
}

/// A validated `jmesPath` item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonKey {
    /// The JMESPath expression, as written (compiled when the secret is read).
    pub path: String,
    /// The file it is written to.
    pub alias: String,
    /// File mode; `None` = the object's.
    pub mode: Option<u32>,
}

impl Entry<'_> {
    /// The `jmesPath` items: only on a single-version secret; each needs a path that compiles and
    /// an objectAlias that is a valid file name.
    pub(super) fn json_keys(
        &mut self,
        raw: &RawObject,
        kind: Option<ObjectKind>,
        history: u32,
    ) -> Vec<JsonKey> {
        let Some(items) = raw.jmes_path.as_deref() else {
            return Vec::new();
        };
        let refuse = |why: &str| format!("jmesPath {why}");
        let problem = match kind {
            _ if items.is_empty() => Some(refuse(
                "is empty; list at least one item, e.g. jmesPath: [{path: username, objectAlias: db-user}]",
            )),
            _ if items.len() > MAX_JSON_KEYS => {
                Some(refuse(&format!("has more than {MAX_JSON_KEYS} items")))
            }
            Some(ObjectKind::Key | ObjectKind::Cert) => Some(refuse(
                "is only valid with objectType: secret (a JSON value is stored as a secret)",
            )),
            _ if history > 1 => Some(refuse(
                "cannot be used with objectVersionHistory; mount the JSON keys of one version",
            )),
            _ => None,
        };
        if let Some(message) = problem {
            self.push("jmesPath", message);
            return Vec::new();
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.json_key(i, item))
            .collect()
    }

    fn json_key(&mut self, i: usize, item: &RawJsonKey) -> Option<JsonKey> {
        let path = trimmed(&item.path);
        let alias = trimmed(&item.object_alias);
        // Each problem with the item's key it is about, so that `check` points at that key.
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        match path {
            None => problems.push(("path", "path is required, e.g. path: username".to_owned())),
            Some(p) if p.len() > MAX_PATH_BYTES => problems.push((
                "path",
                format!(
                    "path is {} bytes long, more than {MAX_PATH_BYTES}; point at the field with a \
                     shorter expression",
                    p.len()
                ),
            )),
            Some(p) => {
                if let Err(e) = jmespath::compile(p) {
                    problems.push((
                        "path",
                        format!(
                            "path {p:?} is not a JMESPath expression ({}); quote names with '-' or \
                             other symbols, e.g. path: '\"connection-string\"'",
                            e.reason
                        ),
                    ));
                }
            }
        }
        match alias {
            None => problems.push((
                "objectAlias",
                "objectAlias is required: the file the value is written to, e.g. objectAlias: db-user"
                    .to_owned(),
            )),
            Some(a) => {
                if let Err(problem) = paths::check(a) {
                    problems.push(("objectAlias", format!("objectAlias {a:?} {problem}")));
                }
            }
        }
        let mode = trimmed(&item.file_permission).and_then(|p| {
            super::file_mode(p)
                .map_err(|message| problems.push(("filePermission", message)))
                .ok()
        });
        let found = !problems.is_empty();
        for (key, problem) in problems {
            let at = ListItem { index: i, key };
            self.push_item("jmesPath", at, format!("jmesPath[{i}]: {problem}"));
        }
        if found {
            return None;
        }
        Some(JsonKey {
            path: path?.to_owned(),
            alias: alias?.to_owned(),
            mode,
        })
    }
}
