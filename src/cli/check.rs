//! `akv-csi-provider check FILE...`: validates SecretProviderClasses offline, for CI and GitOps.
//!
//! Reads YAML files (or `-` for standard input) with any number of documents — Helm-rendered
//! output, `kubectl get secretproviderclass -o yaml` lists — picks every `SecretProviderClass` whose
//! provider is `azure`, and runs on its parameters exactly the validation a Mount runs (the same
//! code, [`crate::mount::request::validate_parameters`]), without network. What a Mount would
//! refuse is an error; what a Mount would silently ignore or what needs a cluster-side setting is a
//! warning or a note. Each finding is located in the file: the Mount's messages start with the
//! field they are about (`objects.array[2] (tls-cert): filePermission …`, `tenantID: …`), and that
//! field is looked up in the document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::cloud::CloudName;
use crate::mount::identity::Mode;
use crate::mount::objects::FIELDS;
use crate::mount::request::{
    LEGACY_PARAMETERS, PARAMETERS, ParseContext, RawAttributes, validate_parameters,
};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A Mount would fail.
    Error,
    /// A Mount would work, probably not as intended.
    Warning,
    /// Something the cluster must provide for this class to work.
    Note,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file as given (`-` for standard input).
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// `namespace/name` of the SecretProviderClass.
    pub class: String,
    /// How serious.
    pub severity: Severity,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Options of `check` that change what a Mount would do.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// `--cloud-name` of the daemon.
    pub default_cloud: CloudName,
    /// `--write-cert-and-key-in-separate-files` of the daemon (split files may collide).
    pub split_files: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            default_cloud: CloudName::Public,
            split_files: false,
        }
    }
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    parameters: Option<BTreeMap<String, Spanned<serde_json::Value>>>,
}

/// A document (or list item) as far as `check` reads it.
#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Option<Spec>,
    /// `kind: List` and `SecretProviderClassList`.
    #[serde(default)]
    items: Option<Vec<Spanned<Resource>>>,
}

#[derive(Deserialize)]
struct ObjectsText {
    #[serde(default)]
    array: Option<Vec<Spanned<serde_json::Value>>>,
}

/// Checks every Azure SecretProviderClass in `text` (the contents of `file`).
pub fn check_text(file: &str, text: &str, options: CheckOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (first_line, doc) in documents(text) {
        let resource: Resource = match serde_saphyr::from_str(doc) {
            Ok(r) => r,
            Err(e) => {
                // Only a document that claims to be a SecretProviderClass is our business.
                if doc.contains("SecretProviderClass") {
                    let line = e.location().map_or(1, |l| l.line());
                    findings.push(Finding {
                        file: file.to_owned(),
                        line: first_line + line - 1,
                        class: String::new(),
                        severity: Severity::Error,
                        message: format!("not valid YAML: {}", one_line(&e.to_string())),
                    });
                }
                continue;
            }
        };
        let mut classes: Vec<(u64, Resource)> = Vec::new();
        match resource.items {
            Some(items) => classes.extend(
                items
                    .into_iter()
                    .map(|item| (first_line + item.referenced.line() - 1, item.value)),
            ),
            None => classes.push((first_line, resource)),
        }
        for (line, class) in classes {
            if class.kind.as_deref() == Some("SecretProviderClass") {
                check_class(
                    file,
                    line,
                    doc_offset(first_line),
                    &class,
                    options,
                    &mut findings,
                );
            }
        }
    }
    findings
}

/// Line numbers inside a document are 1-based; this turns them into file lines.
fn doc_offset(first_line: u64) -> u64 {
    first_line - 1
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits a YAML stream into documents with the file line each starts on. A `---` line starts a
/// document (its own line holds no content we need), `...` ends one.
fn documents(text: &str) -> Vec<(u64, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1u64;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        let is_marker = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if is_marker {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = index as u64 + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.retain(|(_, d)| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

fn check_class(
    file: &str,
    line: u64,
    offset: u64,
    class: &Resource,
    options: CheckOptions,
    findings: &mut Vec<Finding>,
) {
    let Some(spec) = &class.spec else {
        return;
    };
    if spec.provider.as_deref().map(str::trim) != Some("azure") {
        return;
    }
    let name = format!(
        "{}/{}",
        class.metadata.namespace.as_deref().unwrap_or("default"),
        class.metadata.name.as_deref().unwrap_or("")
    );
    let mut push = |line: u64, severity: Severity, message: String| {
        findings.push(Finding {
            file: file.to_owned(),
            line,
            class: name.clone(),
            severity,
            message,
        });
    };
    let empty = BTreeMap::new();
    let parameters = spec.parameters.as_ref().unwrap_or(&empty);
    let line_of = |key: &str| {
        parameters
            .get(key)
            .map_or(line, |v| offset + v.referenced.line())
    };

    // Kubernetes stores parameters as strings; an unquoted `true` or number is refused by the API.
    let mut strings = BTreeMap::new();
    for (key, value) in parameters {
        match &value.value {
            serde_json::Value::String(s) => {
                strings.insert(key.clone(), s.clone());
            }
            other => {
                push(
                    offset + value.referenced.line(),
                    Severity::Error,
                    format!(
                        "parameters.{key}: {other} is not a string; SecretProviderClass parameters are \
                         strings: quote it, e.g. {key}: \"{}\"",
                        other.to_string().trim_matches('"')
                    ),
                );
                strings.insert(key.clone(), other.to_string());
            }
        }
    }
    let attributes = match serde_json::to_value(&strings)
        .ok()
        .and_then(|v| serde_json::from_value::<RawAttributes>(v).ok())
    {
        Some(a) => a,
        None => return,
    };

    let ctx = ParseContext {
        default_cloud: options.default_cloud,
        split_files: options.split_files,
        now: crate::auth::assertion::unix_now(),
    };
    let mut errors = Vec::new();
    let validated = validate_parameters(&attributes, None, &ctx, &mut errors);
    let objects = objects_layout(parameters, offset);
    for error in errors {
        let at = locate(&error, &line_of, &objects).unwrap_or(line);
        push(at, Severity::Error, error);
    }

    for key in parameters.keys() {
        if PARAMETERS.contains(&key.as_str()) || LEGACY_PARAMETERS.contains(&key.as_str()) {
            continue;
        }
        match PARAMETERS.iter().find(|p| p.eq_ignore_ascii_case(key)) {
            Some(wanted) => push(
                line_of(key),
                Severity::Warning,
                format!(
                    "{key} is not a parameter of this provider and is ignored; parameter names are \
                     case-sensitive: write {wanted}"
                ),
            ),
            None => push(
                line_of(key),
                Severity::Warning,
                format!("{key} is not a parameter of this provider and is ignored"),
            ),
        }
    }

    for (index, entry) in objects.entries.iter().enumerate() {
        for (field, field_line) in &entry.fields {
            if FIELDS.contains(&field.as_str()) {
                continue;
            }
            let hint = FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(field))
                .map(|f| format!("; field names are case-sensitive: write {f}"))
                .unwrap_or_default();
            push(
                *field_line,
                Severity::Warning,
                format!(
                    "objects.array[{index}]: {field} is not an object field and is ignored{hint}"
                ),
            );
        }
    }
    for (index, spec) in validated.objects.iter().enumerate() {
        if spec.kind == crate::keyvault::ObjectKind::Key && spec.history > 1 {
            let at = objects
                .field_line(index, "objectVersionHistory")
                .unwrap_or(line);
            push(
                at,
                Severity::Warning,
                format!(
                    "objects.array[{index}] ({}): objectVersionHistory on a key writes a directory of \
                     public keys ({}/0 … {}/{}); make sure the workload reads that directory",
                    spec.name,
                    spec.alias,
                    spec.alias,
                    spec.history - 1
                ),
            );
        }
    }
    match &validated.mode {
        Some(Mode::Workload { client_id }) => push(
            line_of("clientID"),
            Severity::Note,
            format!(
                "workload identity with client ID {client_id}: the CSIDriver secrets-store.csi.k8s.io needs \
                 tokenRequests: [{{audience: api://AzureADTokenExchange}}], and the identity a federated \
                 credential for system:serviceaccount:<namespace>:<service account> of every pod that \
                 mounts this class"
            ),
        ),
        Some(Mode::TokenProxy { .. }) => push(
            line_of("useAzureTokenProxy"),
            Severity::Note,
            "identity binding: the provider needs --token-proxy-url (and --sni-name), and the CSIDriver \
             tokenRequests with audience api://AKSIdentityBinding"
                .to_owned(),
        ),
        Some(Mode::VmManagedIdentity { client_id }) => push(
            line_of("useVMManagedIdentity"),
            Severity::Note,
            match client_id {
                Some(id) => format!(
                    "the node's user-assigned managed identity {id}: it must be assigned to the node \
                     pool's VM scale set and may read the vault"
                ),
                None => "the node's system-assigned managed identity: it must be enabled on the node \
                         pool's VM scale set and may read the vault"
                    .to_owned(),
            },
        ),
        Some(Mode::PodIdentity) => push(
            line_of("usePodIdentity"),
            Severity::Warning,
            "usePodIdentity selects aad-pod-identity, which is deprecated and unsupported since 2022: \
             migrate to workload identity (clientID)"
                .to_owned(),
        ),
        Some(Mode::ServicePrincipal) => push(
            line,
            Severity::Note,
            "no clientID and no identity flag: a service principal; every pod volume using this class \
             needs nodePublishSecretRef naming a Secret with clientid and clientsecret"
                .to_owned(),
        ),
        None => {}
    }
}

/// Where the `objects` entries and their fields are in the file.
#[derive(Default)]
struct ObjectsLayout {
    entries: Vec<EntryLayout>,
}

struct EntryLayout {
    line: u64,
    /// Field name → file line.
    fields: Vec<(String, u64)>,
}

impl ObjectsLayout {
    /// The line that decides an object's file path: its objectAlias, else its objectName (the
    /// default alias), else the entry.
    fn path_line(&self, index: usize) -> Option<u64> {
        let entry = self.entries.get(index)?;
        ["objectAlias", "objectName"]
            .iter()
            .find_map(|name| entry.fields.iter().find(|(f, _)| f == name))
            .map_or(Some(entry.line), |(_, l)| Some(*l))
    }

    fn field_line(&self, index: usize, field: &str) -> Option<u64> {
        let entry = self.entries.get(index)?;
        entry
            .fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, l)| *l)
            .or(Some(entry.line))
    }
}

fn objects_layout(
    parameters: &BTreeMap<String, Spanned<serde_json::Value>>,
    offset: u64,
) -> ObjectsLayout {
    let Some(objects) = parameters.get("objects") else {
        return ObjectsLayout::default();
    };
    let serde_json::Value::String(text) = &objects.value else {
        return ObjectsLayout::default();
    };
    // A block scalar's location is its first content line, the line of `array:`.
    let base = offset + objects.referenced.line();
    let Ok(parsed) = serde_saphyr::from_str::<ObjectsText>(text) else {
        return ObjectsLayout::default();
    };
    let entries = parsed
        .array
        .unwrap_or_default()
        .into_iter()
        .map(|entry| {
            let line = base + entry.referenced.line() - 1;
            let fields = match &entry.value {
                serde_json::Value::String(body) => body
                    .lines()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        let (key, _) = l.split_once(':')?;
                        let key = key.trim();
                        (!key.is_empty() && !l.starts_with([' ', '\t', '#']))
                            .then(|| (key.to_owned(), line + i as u64))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            EntryLayout { line, fields }
        })
        .collect();
    ObjectsLayout { entries }
}

/// The file line a Mount error is about: its leading `objects.array[i]` (and the field named after
/// it), or its leading parameter name.
fn locate(error: &str, line_of: &dyn Fn(&str) -> u64, objects: &ObjectsLayout) -> Option<u64> {
    // A collision is reported with both objects; the later one in the array is the one to change.
    // Its place in the message is not a guide: "inside a directory" names the file's owner first,
    // whichever of the two comes first in the array.
    if error.contains("both write the file") || error.contains("inside a directory") {
        let index = error
            .split("objects.array[")
            .skip(1)
            .filter_map(|rest| rest.split(']').next()?.parse::<usize>().ok())
            .max()?;
        return objects.path_line(index);
    }
    if let Some(rest) = error.strip_prefix("objects.array[") {
        let (index, rest) = rest.split_once(']')?;
        let index: usize = index.parse().ok()?;
        let after = rest.split_once(": ").map_or("", |(_, m)| m);
        let field = FIELDS.iter().find(|f| after.starts_with(*f)).copied();
        return match field {
            Some(f) => objects.field_line(index, f),
            None => objects.entries.get(index).map(|e| e.line),
        };
    }
    if error.starts_with("objects") {
        return Some(line_of("objects"));
    }
    // "keyvaultName is required … (found \"keyVaultName\": …)": the near miss is where to look.
    if let Some((_, rest)) = error.split_once("(found \"")
        && let Some((key, _)) = rest.split_once('"')
    {
        return Some(line_of(key));
    }
    let first = error
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    PARAMETERS.iter().find(|p| **p == first).map(|p| line_of(p))
}

/// Runs `check` with its command line (after `check`). Exit status: 0 clean, 1 errors, 2 usage.
pub fn main(args: &[String]) -> ExitCode {
    let mut files = Vec::new();
    let mut json = false;
    let mut options = CheckOptions::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| iter.next().cloned());
        match flag {
            "-h" | "--help" => {
                eprint!("{}", usage());
                return ExitCode::SUCCESS;
            }
            "--format" => match value().as_deref() {
                Some("json") => json = true,
                Some("text") => json = false,
                other => return usage_error(&format!("--format {other:?}: use text or json")),
            },
            "--cloud-name" => match value().map(|v| v.parse::<CloudName>()) {
                Some(Ok(cloud)) => options.default_cloud = cloud,
                Some(Err(e)) => return usage_error(&format!("--cloud-name: {e}")),
                None => return usage_error("--cloud-name needs a value"),
            },
            "--write-cert-and-key-in-separate-files" => {
                options.split_files = inline.as_deref().is_none_or(|v| v == "true")
            }
            "-" => files.push("-".to_owned()),
            f if f.starts_with('-') => return usage_error(&format!("unknown flag {f}")),
            f => files.push(f.to_owned()),
        }
    }
    if files.is_empty() {
        return usage_error("no file given");
    }
    let mut findings: Vec<Finding> = Vec::new();
    let mut classes = 0usize;
    for file in &files {
        let text = if file == "-" {
            let mut s = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
                Ok(_) => s,
                Err(e) => return usage_error(&format!("reading standard input: {e}")),
            }
        } else {
            match std::fs::read_to_string(file) {
                Ok(s) => s,
                Err(e) => return usage_error(&format!("reading {file}: {e}")),
            }
        };
        classes += count_classes(&text);
        let mut found = check_text(file, &text, options);
        found.sort_by_key(|f| f.line);
        findings.extend(found);
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if json {
        let items: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "file": f.file, "line": f.line, "secretProviderClass": f.class,
                    "severity": f.severity.as_str(), "message": f.message,
                })
            })
            .collect();
        super::print(&format!("{}\n", serde_json::Value::Array(items)));
    } else {
        let mut out = String::new();
        for f in &findings {
            let _ = writeln!(
                out,
                "{}:{}: {}: {}: {}",
                f.file,
                f.line,
                f.class,
                f.severity.as_str(),
                f.message
            );
        }
        let warnings = findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count();
        let _ = writeln!(
            out,
            "checked {classes} SecretProviderClass(es) with provider azure: {errors} error(s), {warnings} \
             warning(s)"
        );
        super::print(&out);
    }
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A SecretProviderClass with provider `azure`, as read from a file.
pub struct AzureClass {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (empty when not set).
    pub namespace: String,
    /// `spec.parameters`, scalars as text.
    pub parameters: BTreeMap<String, String>,
}

/// Every SecretProviderClass with provider `azure` in a YAML stream.
pub fn azure_classes(text: &str) -> Vec<AzureClass> {
    let mut out = Vec::new();
    let mut take = |r: Resource| {
        let Some(spec) = r.spec else { return };
        if r.kind.as_deref() != Some("SecretProviderClass")
            || spec.provider.as_deref().map(str::trim) != Some("azure")
        {
            return;
        }
        let parameters = spec
            .parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let text = match v.value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
        out.push(AzureClass {
            name: r.metadata.name.unwrap_or_default(),
            namespace: r.metadata.namespace.unwrap_or_default(),
            parameters,
        });
    };
    for (_, doc) in documents(text) {
        if let Ok(r) = serde_saphyr::from_str::<Resource>(doc) {
            match r.items {
                Some(items) => items.into_iter().for_each(|i| take(i.value)),
                None => take(r),
            }
        }
    }
    out
}

fn count_classes(text: &str) -> usize {
    let mut n = 0;
    for (_, doc) in documents(text) {
        if let Ok(r) = serde_saphyr::from_str::<Resource>(doc) {
            let is_azure = |r: &Resource| {
                r.kind.as_deref() == Some("SecretProviderClass")
                    && r.spec.as_ref().and_then(|s| s.provider.as_deref()) == Some("azure")
            };
            n += match &r.items {
                Some(items) => items.iter().filter(|i| is_azure(&i.value)).count(),
                None => usize::from(is_azure(&r)),
            };
        }
    }
    n
}

fn usage() -> String {
    "Usage: akv-csi-provider check [--format text|json] [--cloud-name NAME] \
     [--write-cert-and-key-in-separate-files] FILE... (- for standard input)\n\
     Validates every SecretProviderClass with provider azure offline, with the Mount's own rules.\n\
     Exit status: 0 no errors, 1 errors found, 2 usage.\n"
        .to_owned()
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("check: {message}\n{}", usage());
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Vec<Finding> {
        check_text("spc.yaml", text, CheckOptions::default())
    }

    fn at(findings: &[Finding], severity: Severity, needle: &str) -> u64 {
        findings
            .iter()
            .find(|f| f.severity == severity && f.message.contains(needle))
            .unwrap_or_else(|| panic!("no {severity:?} with {needle:?} in {findings:#?}"))
            .line
    }

    const GOOD: &str = "\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app
  namespace: team
spec:
  provider: azure
  parameters:
    keyvaultName: my-vault
    tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47
    clientID: 8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
";

    #[test]
    fn a_good_class_has_only_its_note() {
        let findings = check(GOOD);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].severity, Severity::Note);
        assert_eq!(findings[0].class, "team/app");
        assert_eq!(findings[0].line, 11);
        assert!(findings[0].message.contains("tokenRequests"));
    }

    #[test]
    fn object_field_errors_point_at_the_field_line() {
        let text = GOOD.replace(
            "          objectType: secret\n",
            "          objectType: secret\n        - |\n          objectName: tls\n          objectType: cert\n          filePermission: \"777x\"\n",
        );
        let findings = check(&text);
        assert_eq!(at(&findings, Severity::Error, "filePermission"), 20);
        let f = findings
            .iter()
            .find(|f| f.severity == Severity::Error)
            .unwrap();
        assert!(
            f.message
                .starts_with("objects.array[1] (tls): filePermission \"777x\""),
            "{}",
            f.message
        );
    }

    #[test]
    fn parameter_errors_and_near_misses_point_at_their_keys() {
        let text = GOOD
            .replace("keyvaultName: my-vault", "keyVaultName: my-vault")
            .replace("clientID:", "clientId:");
        let findings = check(&text);
        assert_eq!(at(&findings, Severity::Warning, "write keyvaultName"), 9);
        assert_eq!(at(&findings, Severity::Warning, "write clientID"), 11);
        // keyvaultName is missing: reported at its near miss.
        assert_eq!(
            at(&findings, Severity::Error, "keyvaultName is required"),
            9
        );
        let without = GOOD.replace("    keyvaultName: my-vault\n", "");
        assert_eq!(
            at(
                &check(&without),
                Severity::Error,
                "keyvaultName is required"
            ),
            1,
            "reported where the class starts"
        );
        assert!(
            !findings
                .iter()
                .any(|f| f.message.contains("no identity selected"))
        );
    }

    #[test]
    fn unquoted_booleans_are_errors_and_modes_are_explained() {
        let text = GOOD.replace(
            "    clientID: 8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e\n",
            "    useVMManagedIdentity: true\n    userAssignedIdentityID: 6a1e2b3c-0000-4000-8000-00000000a001\n",
        );
        let findings = check(&text);
        assert_eq!(at(&findings, Severity::Error, "is not a string"), 11);
        assert!(at(&findings, Severity::Note, "user-assigned managed identity") > 0);
        let pod = GOOD.replace(
            "    clientID: 8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e\n",
            "    usePodIdentity: \"true\"\n",
        );
        assert_eq!(at(&check(&pod), Severity::Warning, "deprecated"), 11);
    }

    #[test]
    fn duplicate_paths_including_split_files_are_errors() {
        let text = GOOD.replace(
            "          objectType: secret\n",
            "          objectType: secret\n        - |\n          objectName: ca\n          objectType: cert\n          objectAlias: db-password.crt\n",
        );
        assert!(check(&text).iter().all(|f| f.severity != Severity::Error));
        let split = check_text(
            "spc.yaml",
            &text,
            CheckOptions {
                split_files: true,
                ..CheckOptions::default()
            },
        );
        assert_eq!(
            at(
                &split,
                Severity::Error,
                "both write the file \"db-password.crt\""
            ),
            20
        );
    }

    #[test]
    fn multi_document_streams_and_lists_are_read_and_other_documents_skipped() {
        let stream = format!(
            "# Source: chart/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n---\n{}---\nkind: SecretProviderClass\nmetadata: {{name: vault-one}}\nspec:\n  provider: vault\n  parameters: {{roleName: x}}\n",
            GOOD.replace(
                "tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47",
                "tenantID: not a tenant!"
            )
        );
        let findings = check(&stream);
        assert_eq!(at(&findings, Severity::Error, "tenantID"), 8 + 10);
        assert_eq!(count_classes(&stream), 1);
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            GOOD.lines().collect::<Vec<_>>().join("\n  ")
        );
        let findings = check(&list);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(count_classes(&list), 1);
    }

    #[test]
    fn unknown_object_fields_and_key_history_are_warned() {
        let text = GOOD.replace(
            "          objectType: secret\n",
            "          objecttype: secret\n          objectType: key\n          objectVersionHistory: \"3\"\n",
        );
        let findings = check(&text);
        assert_eq!(at(&findings, Severity::Warning, "write objectType"), 16);
        assert_eq!(
            at(&findings, Severity::Warning, "directory of public keys"),
            18
        );
    }

    #[test]
    fn broken_yaml_in_a_class_is_an_error_with_a_line() {
        let findings = check("kind: SecretProviderClass\nspec: [\n");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].message.contains("not valid YAML"));
    }
}
