//! The `objects` parameter: YAML `array:` of strings, each string a YAML mapping describing one Key
//! Vault object (README, "The SecretProviderClass it accepts"). Parsed into [`RawObject`] (text as written) and validated into
//! [`ObjectSpec`]; every error names the object by index and name and shows a valid value.
//!
//! The fields this provider adds to Azure's (each opt-in: a class without them mounts what Azure's
//! provider mounts) are validated in their own modules: [`json_keys`] (`jmesPath`) and [`pattern`]
//! (a glob as `objectName`); `keyvaultName` and `optional` are single values checked here.

pub mod json_keys;
pub mod pattern;

use serde::Deserialize;

use super::findings::{Finding, ListItem};
use super::{paths, trimmed};
use crate::convert::{ObjectEncoding, ObjectFormat};
use crate::keyvault::ObjectKind;

/// Upper bound on objects in one SecretProviderClass: each costs a Key Vault call per Mount.
pub const MAX_OBJECTS: usize = 256;
/// Upper bound on `objectVersionHistory`.
pub const MAX_VERSION_HISTORY: u32 = 100;

#[derive(Deserialize)]
struct ObjectsDoc {
    #[serde(default)]
    array: Option<Vec<ArrayEntry>>,
}

/// An entry of `array`: the Go provider only takes strings; a mapping gets a pointed message.
#[derive(Deserialize)]
#[serde(untagged)]
enum ArrayEntry {
    Text(String),
    Other(serde::de::IgnoredAny),
}

/// The object fields this provider reads (for near-miss hints).
pub const FIELDS: &[&str] = &[
    "objectName",
    "objectType",
    "objectAlias",
    "objectVersion",
    "objectVersionHistory",
    "objectFormat",
    "objectEncoding",
    "filePermission",
    "keyvaultName",
    "optional",
    "jmesPath",
    "includeManaged",
];

/// One object's fields as written. Every field is taken as text, like the Go provider's YAML
/// decoding into string fields (so `filePermission: 0600` stays "0600").
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawObject {
    /// `objectName`.
    pub object_name: Option<String>,
    /// `objectType`.
    pub object_type: Option<String>,
    /// `objectAlias`.
    pub object_alias: Option<String>,
    /// `objectVersion`.
    pub object_version: Option<String>,
    /// `objectVersionHistory`.
    pub object_version_history: Option<String>,
    /// `objectFormat`.
    pub object_format: Option<String>,
    /// `objectEncoding`.
    pub object_encoding: Option<String>,
    /// `filePermission`.
    pub file_permission: Option<String>,
    /// `keyvaultName`: the object's vault, when not the class's.
    pub keyvault_name: Option<String>,
    /// `optional`.
    pub optional: Option<String>,
    /// `jmesPath`: files from fields of a JSON secret (AWS's provider's syntax).
    pub jmes_path: Option<Vec<json_keys::RawJsonKey>>,
    /// `includeManaged`: a pattern also matches certificate-backed secrets and keys.
    pub include_managed: Option<String>,
}

/// A validated object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Its index in `objects.array` as written (counting invalid entries too), for findings.
    pub index: usize,
    /// `objectName`.
    pub name: String,
    /// `objectType`.
    pub kind: ObjectKind,
    /// The file name (or directory, in history mode).
    pub alias: String,
    /// `None` = latest.
    pub version: Option<String>,
    /// Number of versions to write; 1 = the single-file form.
    pub history: u32,
    /// `objectFormat`.
    pub format: ObjectFormat,
    /// `objectEncoding`.
    pub encoding: ObjectEncoding,
    /// File mode; `None` = the request's `permission`.
    pub mode: Option<u32>,
    /// `keyvaultName` of the entry, when it names another vault than the class's.
    pub vault: Option<String>,
    /// `optional: "true"`: an object that does not exist or is disabled writes no file.
    pub optional: bool,
    /// `objectName` is a pattern: the vault's objects are listed and each match is mounted.
    pub pattern: Option<pattern::PatternOptions>,
    /// `jmesPath`: more files, from the fields of the secret's JSON value.
    pub json_keys: Vec<json_keys::JsonKey>,
}

impl ObjectSpec {
    /// The `ObjectVersion.id` of the object (single-version form) or of version `i` (history form).
    /// Objects of the class's vault keep the Go provider's ids (`secret/name`, `secret/name/2`), so
    /// switching providers rewrites nothing; an object of another vault adds `@vault`, which no id of
    /// the class's vault can contain (names are letters, digits and '-').
    pub fn version_id(&self, index: Option<u32>) -> String {
        let mut id = format!("{}/{}", self.kind.as_str(), self.name);
        if let Some(vault) = &self.vault {
            id.push('@');
            id.push_str(vault);
        }
        if let Some(i) = index {
            id.push('/');
            id.push_str(&i.to_string());
        }
        id
    }

    /// The `ObjectVersion.id` of one of its `jmesPath` files: the object's id and `#objectAlias`
    /// (aliases are unique files of a volume and `#` is in no name, so ids are unique).
    pub fn json_key_id(&self, key: &json_keys::JsonKey) -> String {
        format!("{}#{}", self.version_id(None), key.alias)
    }

    /// The vault this object is read from: its own `keyvaultName`, else the class's.
    pub fn vault_name<'a>(&'a self, class_vault: &'a str) -> &'a str {
        self.vault.as_deref().unwrap_or(class_vault)
    }
}

/// `filePermission`: an octal mode as text.
fn file_mode(p: &str) -> Result<u32, String> {
    match u32::from_str_radix(p, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!(
            "filePermission {p:?} is not an octal file mode up to 0777, e.g. \"0600\" or \"644\""
        )),
    }
}

/// Key Vault names: 3-24 letters, digits and '-' (the first label of the vault's host name).
pub(crate) fn valid_vault_name(v: &str) -> bool {
    (3..=24).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

const EXAMPLE: &str =
    "objects: |\n  array:\n    - |\n      objectName: db-password\n      objectType: secret";

/// Parses and validates the `objects` parameter. Errors are collected, not stopped at the first.
pub fn parse(yaml: &str, errors: &mut Vec<Finding>) -> Vec<ObjectSpec> {
    let doc: ObjectsDoc = match serde_saphyr::from_str(yaml) {
        Ok(doc) => doc,
        Err(e) => {
            errors.push(Finding::objects(format!(
                "objects: not valid YAML ({}); expected the form\n{EXAMPLE}",
                one_line(&e.to_string())
            )));
            return Vec::new();
        }
    };
    let Some(entries) = doc.array.filter(|a| !a.is_empty()) else {
        errors.push(Finding::objects(format!(
            "objects: the array is empty or missing; list at least one object, e.g.\n{EXAMPLE}"
        )));
        return Vec::new();
    };
    if entries.len() > MAX_OBJECTS {
        errors.push(Finding::objects(format!(
            "objects: {} entries; at most {MAX_OBJECTS} objects per SecretProviderClass",
            entries.len()
        )));
        return Vec::new();
    }
    let mut specs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let text = match entry {
            ArrayEntry::Text(t) => t,
            ArrayEntry::Other(_) => {
                errors.push(Finding::object(
                    index,
                    None,
                    format!(
                        "objects.array[{index}]: is a mapping, but each entry must be a string holding \
                         YAML; write `- |` and indent the object's fields below it"
                    ),
                ));
                continue;
            }
        };
        let raw: RawObject = match serde_saphyr::from_str(&text) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(Finding::object(
                    index,
                    None,
                    format!(
                        "objects.array[{index}]: not a YAML mapping of object fields ({}); e.g. \
                         \"objectName: db-password\\nobjectType: secret\"",
                        one_line(&e.to_string())
                    ),
                ));
                continue;
            }
        };
        if let Some(spec) = validate(index, raw, errors) {
            specs.push(spec);
        }
    }
    specs
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Key Vault object names: 1–127 letters, digits and dashes.
fn valid_object_name(name: &str) -> bool {
    within_name_rules(name, b"")
}

/// 1-127 letters, digits, '-' and the `extra` bytes (a pattern's `*` and `?`).
fn within_name_rules(name: &str, extra: &[u8]) -> bool {
    (1..=127).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || extra.contains(&b))
}

/// Validates one object; pushes every problem found, each located at the entry's field.
pub fn validate(index: usize, raw: RawObject, errors: &mut Vec<Finding>) -> Option<ObjectSpec> {
    let before = errors.len();
    let name = trimmed(&raw.object_name).unwrap_or_default().to_owned();
    let mut entry = Entry {
        index,
        // Escaped: a name may hold characters that would garble the message (bidirectional
        // controls).
        at: if name.is_empty() {
            format!("objects.array[{index}]")
        } else {
            format!("objects.array[{index}] ({})", name.escape_debug())
        },
        errors,
    };
    let is_pattern = pattern::is_pattern(&name);
    if is_pattern {
        entry.check_pattern_name(&name);
    } else {
        entry.check_name(&name);
    }
    let kind = entry.kind(&raw);
    let alias = entry.alias(&raw, &name, is_pattern);
    let version = entry.version(&raw);
    let history = entry.history(&raw);
    let format = entry.format(&raw, kind);
    let encoding = entry.encoding(&raw, kind);
    let mode = entry.mode(&raw);
    let vault = entry.vault(&raw);
    let optional = entry.flag("optional", &raw.optional);
    let json_keys = entry.json_keys(&raw, kind, history);
    let pattern = entry.pattern_options(&raw, is_pattern, kind, version.is_some(), history);
    if !json_keys.is_empty() && is_pattern {
        let message = "jmesPath cannot be used with a pattern as objectName (each JSON key needs \
                       its own objectAlias); list the secret by name"
            .to_owned();
        entry.push("jmesPath", message);
    }
    if entry.errors.len() > before {
        return None;
    }
    Some(ObjectSpec {
        index,
        name,
        kind: kind?,
        alias,
        version,
        history,
        format,
        encoding,
        mode,
        vault,
        optional,
        pattern,
        json_keys,
    })
}

/// One entry being validated: where its findings go and how they name it.
struct Entry<'a> {
    index: usize,
    /// `objects.array[i] (name)`, the start of every message.
    at: String,
    errors: &'a mut Vec<Finding>,
}

impl Entry<'_> {
    fn push(&mut self, field: &'static str, message: String) {
        let message = format!("{}: {message}", self.at);
        self.errors
            .push(Finding::object(self.index, Some(field), message));
    }

    /// A finding about an item of a list field (`jmesPath[i]`), located at that item.
    fn push_item(&mut self, field: &'static str, item: ListItem, message: String) {
        let message = format!("{}: {message}", self.at);
        self.errors
            .push(Finding::object_item(self.index, field, item, message));
    }

    fn check_name(&mut self, name: &str) {
        if name.is_empty() {
            self.push(
                "objectName",
                "objectName is required, e.g. objectName: db-password".to_owned(),
            );
        } else if let Some(found) = paths::suspicious_char(name) {
            let message = format!(
                "objectName contains {}; Key Vault object names are 1-127 letters, digits and '-'",
                paths::name_char(found)
            );
            self.push("objectName", message);
        } else if !valid_object_name(name) {
            let message = format!(
                "objectName {name:?} is not a Key Vault object name (1-127 letters, digits and '-')"
            );
            self.push("objectName", message);
        }
    }

    /// `objectAlias`: the file name (default: the object's name); for a pattern, a directory for
    /// the matches ending in '/' (default: none, each match under its own name).
    fn alias(&mut self, raw: &RawObject, name: &str, is_pattern: bool) -> String {
        let written = trimmed(&raw.object_alias);
        if is_pattern {
            return self.pattern_alias(written);
        }
        let alias = written.unwrap_or(name).to_owned();
        if !alias.is_empty()
            && let Err(problem) = paths::check(&alias)
        {
            let message = format!(
                "objectAlias {alias:?} {problem}; it becomes the file name inside the volume"
            );
            self.push("objectAlias", message);
        }
        alias
    }

    /// `keyvaultName` on an entry: another vault of the same tenant, read with the same identity.
    fn vault(&mut self, raw: &RawObject) -> Option<String> {
        let v = trimmed(&raw.keyvault_name)?;
        if valid_vault_name(v) {
            return Some(v.to_owned());
        }
        let message = format!(
            "keyvaultName {v:?} is not a Key Vault name (3-24 letters, digits and '-'); leave it out \
             to read the object from the class's keyvaultName"
        );
        self.push("keyvaultName", message);
        None
    }

    /// A yes/no field, written as text like every object field: "true" or "false".
    fn flag(&mut self, field: &'static str, value: &Option<String>) -> bool {
        match trimmed(value).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                let message = format!("{field} {other:?} is not valid; use \"true\" or \"false\"");
                self.push(field, message);
                false
            }
        }
    }

    fn kind(&mut self, raw: &RawObject) -> Option<ObjectKind> {
        let value = trimmed(&raw.object_type).map(str::to_ascii_lowercase);
        match value.as_deref() {
            Some("secret") => Some(ObjectKind::Secret),
            Some("key") => Some(ObjectKind::Key),
            Some("cert") => Some(ObjectKind::Cert),
            None => {
                let message = "objectType is required: secret, key or cert".to_owned();
                self.push("objectType", message);
                None
            }
            Some(other) => {
                let message = format!(
                    "objectType {other:?} is not valid; use secret, key or cert (a certificate's \
                     private key is objectType: secret)"
                );
                self.push("objectType", message);
                None
            }
        }
    }

    fn version(&mut self, raw: &RawObject) -> Option<String> {
        match trimmed(&raw.object_version) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("latest") => None,
            Some(v) if v.bytes().all(|b| b.is_ascii_alphanumeric()) && v.len() <= 64 => {
                Some(v.to_owned())
            }
            Some(v) => {
                let message = format!(
                    "objectVersion {v:?} is not a Key Vault version id (32 hex digits, e.g. \
                     c35fc1a31f9144c2877aa67b6ad4c31a); leave it empty for the latest version"
                );
                self.push("objectVersion", message);
                None
            }
        }
    }

    fn history(&mut self, raw: &RawObject) -> u32 {
        let Some(h) = trimmed(&raw.object_version_history) else {
            return 1;
        };
        let message = match h.parse::<i64>() {
            Ok(n) if n <= 1 => return 1,
            Ok(n) if n <= i64::from(MAX_VERSION_HISTORY) => return n as u32,
            Ok(_) => {
                format!("objectVersionHistory {h} is too large; at most {MAX_VERSION_HISTORY}")
            }
            Err(_) => format!(
                "objectVersionHistory {h:?} is not a whole number, e.g. objectVersionHistory: 5"
            ),
        };
        self.push("objectVersionHistory", message);
        1
    }

    fn format(&mut self, raw: &RawObject, kind: Option<ObjectKind>) -> ObjectFormat {
        let value = trimmed(&raw.object_format).map(str::to_ascii_lowercase);
        match value.as_deref() {
            None | Some("pem") => ObjectFormat::Pem,
            Some("pfx") => {
                if kind.is_some_and(|k| k != ObjectKind::Secret) {
                    let message =
                        "objectFormat pfx is only valid with objectType: secret (the PFX \
                                   with the private key is stored in the certificate's secret)"
                            .to_owned();
                    self.push("objectFormat", message);
                }
                ObjectFormat::Pfx
            }
            Some(other) => {
                let message = format!("objectFormat {other:?} is not valid; use pem or pfx");
                self.push("objectFormat", message);
                ObjectFormat::Pem
            }
        }
    }

    fn encoding(&mut self, raw: &RawObject, kind: Option<ObjectKind>) -> ObjectEncoding {
        let value = trimmed(&raw.object_encoding).map(str::to_ascii_lowercase);
        match value.as_deref() {
            None | Some("utf-8") => ObjectEncoding::Utf8,
            Some(enc @ ("base64" | "hex")) => {
                if kind.is_some_and(|k| k != ObjectKind::Secret) {
                    let message =
                        format!("objectEncoding {enc} is only valid with objectType: secret");
                    self.push("objectEncoding", message);
                }
                if enc == "base64" {
                    ObjectEncoding::Base64
                } else {
                    ObjectEncoding::Hex
                }
            }
            Some(other) => {
                let message =
                    format!("objectEncoding {other:?} is not valid; use utf-8, base64 or hex");
                self.push("objectEncoding", message);
                ObjectEncoding::Utf8
            }
        }
    }

    fn mode(&mut self, raw: &RawObject) -> Option<u32> {
        let p = trimmed(&raw.file_permission)?;
        file_mode(p)
            .map_err(|message| self.push("filePermission", message))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(yaml: &str) -> Vec<ObjectSpec> {
        let mut errors = Vec::new();
        let specs = parse(yaml, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        specs
    }

    fn parse_err(yaml: &str) -> String {
        let mut errors = Vec::new();
        parse(yaml, &mut errors);
        assert!(!errors.is_empty());
        crate::mount::findings::messages(&errors)
    }

    #[test]
    fn go_provider_style_objects_parse() {
        let specs = parse_ok(
            "array:\n  - |\n    objectName: secret1\n    objectType: secret\n    objectVersion: \"\"\n  - |\n    objectName: key1\n    objectType: key\n    objectAlias: dir/key.pem\n    filePermission: 0600\n    objectVersionHistory: 3\n",
        );
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].alias, "secret1");
        assert_eq!(specs[0].version, None);
        assert_eq!(specs[0].version_id(None), "secret/secret1");
        assert_eq!(specs[1].kind, ObjectKind::Key);
        assert_eq!(specs[1].alias, "dir/key.pem");
        assert_eq!(specs[1].mode, Some(0o600));
        assert_eq!(specs[1].history, 3);
        assert_eq!(specs[1].version_id(Some(2)), "key/key1/2");
    }

    #[test]
    fn case_insensitive_values_and_latest() {
        let specs = parse_ok(
            "array:\n  - |\n    objectName: c\n    objectType: secret\n    objectFormat: PFX\n    objectEncoding: Base64\n    objectVersion: latest\n",
        );
        assert_eq!(specs[0].format, ObjectFormat::Pfx);
        assert_eq!(specs[0].encoding, ObjectEncoding::Base64);
        assert_eq!(specs[0].version, None);
    }

    #[test]
    fn errors_name_index_object_and_a_valid_value() {
        let e = parse_err("array:\n  - |\n    objectName: s\n    objectType: secrets\n");
        assert!(
            e.contains("objects.array[0] (s)") && e.contains("secret, key or cert"),
            "{e}"
        );
        let e = parse_err(
            "array:\n  - |\n    objectName: s\n    objectType: secret\n    filePermission: \"999\"\n",
        );
        assert!(e.contains("filePermission") && e.contains("0600"), "{e}");
        let e = parse_err("array:\n  - |\n    objectType: secret\n");
        assert!(
            e.contains("objects.array[0]: objectName is required"),
            "{e}"
        );
        let e = parse_err(
            "array:\n  - |\n    objectName: k\n    objectType: key\n    objectFormat: pfx\n",
        );
        assert!(e.contains("only valid with objectType: secret"), "{e}");
        let e = parse_err(
            "array:\n  - |\n    objectName: s\n    objectType: secret\n    objectAlias: ../etc/passwd\n",
        );
        assert!(e.contains("objectAlias"), "{e}");
        let e = parse_err(
            "array:\n  - |\n    objectName: s\n    objectType: secret\n    objectVersionHistory: many\n",
        );
        assert!(e.contains("objectVersionHistory"), "{e}");
        let e = parse_err(
            "array:\n  - |\n    objectName: s\n    objectType: secret\n    objectEncoding: rot13\n",
        );
        assert!(e.contains("utf-8, base64 or hex"), "{e}");
    }

    #[test]
    fn empty_array_and_bad_yaml_are_explained() {
        assert!(parse_err("array: []").contains("empty"));
        assert!(parse_err("array:\n").contains("empty"));
        assert!(parse_err("array: [").contains("not valid YAML"));
        assert!(parse_err("array:\n  - objectName: s\n    objectType: secret\n").contains("`- |`"));
    }

    #[test]
    fn alias_with_double_dot_inside_a_name_is_fine() {
        // Regression: the Go provider rejects any alias containing "..".
        let specs = parse_ok(
            "array:\n  - |\n    objectName: s\n    objectType: secret\n    objectAlias: tls..pem\n",
        );
        assert_eq!(specs[0].alias, "tls..pem");
    }

    fn entry(fields: &str) -> String {
        let mut yaml = String::from("array:\n  - |\n");
        for line in fields.lines() {
            yaml.push_str("    ");
            yaml.push_str(line);
            yaml.push('\n');
        }
        yaml
    }

    #[test]
    fn added_fields_parse() {
        let specs = parse_ok(&entry(
            "objectName: db\nobjectType: secret\nkeyvaultName: kv-b\noptional: \"TRUE\"\njmesPath:\n  - path: user\n    objectAlias: db-user\n    filePermission: \"0600\"",
        ));
        let spec = &specs[0];
        assert_eq!(spec.vault.as_deref(), Some("kv-b"));
        assert!(spec.optional);
        assert_eq!(spec.json_keys.len(), 1);
        assert_eq!(spec.json_keys[0].alias, "db-user");
        assert_eq!(spec.json_keys[0].mode, Some(0o600));
        assert_eq!(spec.version_id(None), "secret/db@kv-b");
        assert_eq!(spec.version_id(Some(1)), "secret/db@kv-b/1");
        let specs = parse_ok(&entry(
            "objectName: \"app1-*\"\nobjectType: secret\nobjectAlias: app1/\nincludeManaged: \"true\"",
        ));
        assert_eq!(specs[0].alias, "app1/");
        assert_eq!(
            specs[0].pattern,
            Some(pattern::PatternOptions {
                include_managed: true
            })
        );
    }

    /// A jmesPath item's finding is located at the item and the key it is about (`check` places
    /// it there); one about the list as a whole at the field.
    #[test]
    fn jmes_path_findings_are_located_at_their_item_and_key() {
        use crate::mount::findings::Location;
        let item = |index, key| Location::Object {
            index: 0,
            field: Some("jmesPath"),
            item: Some(ListItem { index, key }),
        };
        let mut errors = Vec::new();
        parse(
            &entry(
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: u\n    objectAlias: u\n  - path: a-b\n    objectAlias: x\n  - path: c\n    filePermission: \"999\"",
            ),
            &mut errors,
        );
        let located: Vec<Location> = errors.iter().map(|f| f.location.clone()).collect();
        assert_eq!(
            located,
            [
                item(1, "path"),
                item(2, "objectAlias"),
                item(2, "filePermission")
            ],
            "{errors:?}"
        );
        assert!(
            errors[1]
                .message
                .starts_with("objects.array[0] (a): jmesPath[2]: objectAlias is required")
        );
        let mut errors = Vec::new();
        parse(
            &entry("objectName: a\nobjectType: secret\njmesPath: []"),
            &mut errors,
        );
        let whole = Location::Object {
            index: 0,
            field: Some("jmesPath"),
            item: None,
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].location, whole);
    }

    #[test]
    fn added_fields_are_refused_where_they_cannot_work() {
        for (fields, field, words) in [
            (
                "objectName: \"a*\"\nobjectType: secret\nobjectVersion: abc",
                "objectVersion",
                "pattern",
            ),
            (
                "objectName: \"a*\"\nobjectType: secret\nobjectVersionHistory: 2",
                "objectVersionHistory",
                "pattern",
            ),
            (
                "objectName: \"a*\"\nobjectType: secret\nobjectAlias: dir",
                "objectAlias",
                "ending in '/'",
            ),
            (
                "objectName: \"a*\"\nobjectType: cert\nincludeManaged: \"true\"",
                "includeManaged",
                "secret and key",
            ),
            (
                "objectName: \"a_*\"\nobjectType: secret",
                "objectName",
                "not a pattern",
            ),
            (
                "objectName: a\nobjectType: secret\nincludeManaged: \"true\"",
                "includeManaged",
                "only applies to a pattern",
            ),
            (
                "objectName: a\nobjectType: secret\nkeyvaultName: x",
                "keyvaultName",
                "3-24",
            ),
            (
                "objectName: a\nobjectType: secret\noptional: yes",
                "optional",
                "\"true\" or \"false\"",
            ),
            (
                "objectName: a\nobjectType: key\njmesPath:\n  - path: x\n    objectAlias: x",
                "jmesPath",
                "only valid with objectType: secret",
            ),
            (
                "objectName: a\nobjectType: secret\nobjectVersionHistory: 3\njmesPath:\n  - path: x\n    objectAlias: x",
                "jmesPath",
                "objectVersionHistory",
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath: []",
                "jmesPath",
                "empty",
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: x",
                "jmesPath",
                "jmesPath[0]: objectAlias is required",
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: connection-string\n    objectAlias: x",
                "jmesPath",
                "not a JMESPath expression",
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - objectAlias: x",
                "jmesPath",
                "path is required",
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: x\n    objectAlias: ../x",
                "jmesPath",
                "objectAlias \"../x\"",
            ),
            (
                "objectName: \"a*\"\nobjectType: secret\njmesPath:\n  - path: x\n    objectAlias: x",
                "jmesPath",
                "pattern",
            ),
        ] {
            let mut errors = Vec::new();
            assert!(parse(&entry(fields), &mut errors).is_empty(), "{fields}");
            let found = errors.iter().find(|f| {
                matches!(
                    f.location,
                    crate::mount::findings::Location::Object { index: 0, field: Some(f), .. }
                        if f == field
                )
            });
            let message = found.map(|f| f.message.clone()).unwrap_or_default();
            assert!(message.contains(words), "{fields}: {errors:?}");
        }
    }
}
