//! `akv-csi-provider check FILE...`: validates SecretProviderClasses offline, for CI and GitOps.
//!
//! Reads YAML files (or `-` for standard input) with any number of documents — Helm-rendered
//! output, `kubectl get secretproviderclass -o yaml` lists — picks every `SecretProviderClass` whose
//! provider is `azure`, and runs on its parameters exactly the validation a Mount runs (the same
//! code, [`crate::mount::request::validate_parameters`]), without network. What a Mount would
//! refuse is an error; what a Mount would silently ignore or what needs a cluster-side setting is a
//! warning or a note. Each finding is located in the file from its location (a parameter, an
//! object's field: [`crate::mount::findings::Location`]), never from its wording.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::cloud::CloudName;
pub use crate::mount::findings::Severity;
use crate::mount::findings::{Finding as Problem, ListItem, Location};
use crate::mount::identity::Mode;
use crate::mount::objects::FIELDS;
use crate::mount::request::{
    LEGACY_PARAMETERS, PARAMETERS, ParseContext, RawAttributes, validate_parameters,
};

/// One finding, placed in its file.
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

/// One SecretProviderClass being checked: where its findings go and how they are placed.
struct Class<'a> {
    file: &'a str,
    /// The class's first line; findings without a place of their own go there.
    line: u64,
    /// Added to a document line to get the file line.
    offset: u64,
    name: String,
    parameters: &'a BTreeMap<String, Spanned<serde_json::Value>>,
    objects: ObjectsLayout,
    out: &'a mut Vec<Finding>,
}

impl Class<'_> {
    fn push(&mut self, line: u64, severity: Severity, message: String) {
        self.out.push(Finding {
            file: self.file.to_owned(),
            line,
            class: self.name.clone(),
            severity,
            message,
        });
    }

    /// The file line of a parameter (the class's line when it is not written).
    fn line_of(&self, key: &str) -> u64 {
        self.parameters
            .get(key)
            .map_or(self.line, |v| self.offset + v.referenced.line())
    }

    /// The file line a validation finding's location points at.
    fn locate(&self, location: &Location) -> u64 {
        match location {
            Location::Parameter(key) => self.line_of(key),
            Location::Objects => self.line_of("objects"),
            Location::Object { index, field, item } => {
                let line = match (field, item) {
                    (Some("jmesPath"), Some(item)) => self.objects.item_line(*index, item),
                    (Some("objectAlias"), _) => self.objects.path_line(*index),
                    (Some(field), _) => self.objects.field_line(*index, field),
                    (None, _) => self.objects.entries.get(*index).map(|e| e.line),
                };
                line.unwrap_or_else(|| self.line_of("objects"))
            }
            Location::Request(_) => self.line,
        }
    }

    fn report(&mut self, problems: Vec<Problem>) {
        for problem in problems {
            let line = self.locate(&problem.location);
            self.push(line, problem.severity, problem.message);
        }
    }
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
    let empty = BTreeMap::new();
    let parameters = spec.parameters.as_ref().unwrap_or(&empty);
    let mut class = Class {
        file,
        line,
        offset,
        name: format!(
            "{}/{}",
            class.metadata.namespace.as_deref().unwrap_or("default"),
            class.metadata.name.as_deref().unwrap_or("")
        ),
        parameters,
        objects: objects_layout(parameters, offset),
        out: findings,
    };
    let mut problems = Vec::new();
    let Some(attributes) = string_parameters(parameters, &mut problems) else {
        class.report(problems);
        return;
    };
    let ctx = ParseContext {
        default_cloud: options.default_cloud,
        split_files: options.split_files,
        now: crate::auth::assertion::unix_now(),
    };
    let validated = validate_parameters(&attributes, None, &ctx, &mut problems);
    // A key that already has an error (a near miss of a required parameter) is not warned about
    // again on the same line.
    let reported: Vec<Location> = problems.iter().map(|p| p.location.clone()).collect();
    class.report(problems);
    unknown_parameters(&mut class, &reported);
    unknown_fields(&mut class);
    key_history(&mut class, &validated.objects);
    pattern_notes(&mut class, &validated.objects);
    if let Some(mode) = &validated.mode {
        mode_note(&mut class, mode);
    }
}

/// The parameters as the Mount receives them (strings). Kubernetes stores parameters as strings;
/// an unquoted `true` or number is refused by the API.
fn string_parameters(
    parameters: &BTreeMap<String, Spanned<serde_json::Value>>,
    problems: &mut Vec<Problem>,
) -> Option<RawAttributes> {
    let mut strings = BTreeMap::new();
    for (key, value) in parameters {
        match &value.value {
            serde_json::Value::String(s) => {
                strings.insert(key.clone(), s.clone());
            }
            other => {
                problems.push(Problem::parameter(
                    key,
                    format!(
                        "parameters.{key}: {other} is not a string; SecretProviderClass parameters are \
                         strings: quote it, e.g. {key}: \"{}\"",
                        other.to_string().trim_matches('"')
                    ),
                ));
                strings.insert(key.clone(), other.to_string());
            }
        }
    }
    serde_json::to_value(&strings)
        .ok()
        .and_then(|v| serde_json::from_value::<RawAttributes>(v).ok())
}

fn unknown_parameters(class: &mut Class<'_>, reported: &[Location]) {
    let keys: Vec<String> = class.parameters.keys().cloned().collect();
    for key in keys {
        if PARAMETERS.contains(&key.as_str())
            || LEGACY_PARAMETERS.contains(&key.as_str())
            || reported.contains(&Location::Parameter(key.clone()))
        {
            continue;
        }
        let message = match PARAMETERS.iter().find(|p| p.eq_ignore_ascii_case(&key)) {
            Some(wanted) => format!(
                "{key} is not a parameter of this provider and is ignored; parameter names are \
                 case-sensitive: write {wanted}"
            ),
            None => format!("{key} is not a parameter of this provider and is ignored"),
        };
        let line = class.line_of(&key);
        class.push(line, Severity::Warning, message);
    }
}

fn unknown_fields(class: &mut Class<'_>) {
    let mut warnings = Vec::new();
    for (index, entry) in class.objects.entries.iter().enumerate() {
        for (field, field_line) in &entry.fields {
            if FIELDS.contains(&field.as_str()) {
                continue;
            }
            let hint = FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(field))
                .map(|f| format!("; field names are case-sensitive: write {f}"))
                .or_else(|| {
                    // GCP's provider's field for the same need: point at the one this provider reads.
                    (field == "extractJSONKey").then(|| {
                        "; this provider reads AWS's syntax for JSON keys: jmesPath: [{path: <key>, \
                         objectAlias: <file>}]"
                            .to_owned()
                    })
                })
                .unwrap_or_default();
            warnings.push((
                *field_line,
                format!(
                    "objects.array[{index}]: {field} is not an object field and is ignored{hint}"
                ),
            ));
        }
    }
    for (line, message) in warnings {
        class.push(line, Severity::Warning, message);
    }
}

/// A pattern lists the vault at every Mount: a permission that reading objects by name does not need.
fn pattern_notes(class: &mut Class<'_>, objects: &[crate::mount::objects::ObjectSpec]) {
    for spec in objects.iter().filter(|o| o.pattern.is_some()) {
        let line = class.locate(&Location::Object {
            index: spec.index,
            field: Some("objectName"),
            item: None,
        });
        let message = format!(
            "objects.array[{}] ({}): a pattern lists the vault's {} at every Mount; the identity needs \
             the permission to list them: {}",
            spec.index,
            spec.name,
            spec.kind.collection(),
            crate::mount::error::list_permission(spec.kind)
        );
        class.push(line, Severity::Note, message);
    }
}

/// History on a key writes a directory of public keys, which a workload may not expect.
fn key_history(class: &mut Class<'_>, objects: &[crate::mount::objects::ObjectSpec]) {
    for spec in objects {
        if spec.kind != crate::keyvault::ObjectKind::Key || spec.history <= 1 {
            continue;
        }
        let line = class.locate(&Location::Object {
            index: spec.index,
            field: Some("objectVersionHistory"),
            item: None,
        });
        let message = format!(
            "objects.array[{}] ({}): objectVersionHistory on a key writes a directory of public keys \
             ({}/0 … {}/{}); make sure the workload reads that directory",
            spec.index,
            spec.name,
            spec.alias,
            spec.alias,
            spec.history - 1
        );
        class.push(line, Severity::Warning, message);
    }
}

/// What the cluster must provide for the identity mode the class selects.
fn mode_note(class: &mut Class<'_>, mode: &Mode) {
    let (key, severity, message) = match mode {
        Mode::Workload { client_id } => (
            "clientID",
            Severity::Note,
            format!(
                "workload identity with client ID {client_id}: the CSIDriver secrets-store.csi.k8s.io \
                 needs tokenRequests: [{{audience: api://AzureADTokenExchange}}], and the identity a \
                 federated credential for system:serviceaccount:<namespace>:<service account> of every \
                 pod that mounts this class"
            ),
        ),
        Mode::TokenProxy { .. } => (
            "useAzureTokenProxy",
            Severity::Note,
            "identity binding: the provider needs --token-proxy-url (and --sni-name), and the CSIDriver \
             tokenRequests with audience api://AKSIdentityBinding"
                .to_owned(),
        ),
        Mode::VmManagedIdentity { client_id } => (
            "useVMManagedIdentity",
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
        Mode::PodIdentity => (
            "usePodIdentity",
            Severity::Warning,
            "usePodIdentity selects aad-pod-identity, which is deprecated and unsupported since 2022: \
             migrate to workload identity (clientID)"
                .to_owned(),
        ),
        Mode::ServicePrincipal => (
            "",
            Severity::Note,
            "no clientID and no identity flag: a service principal; every pod volume using this class \
             needs nodePublishSecretRef naming a Secret with clientid and clientsecret"
                .to_owned(),
        ),
    };
    let line = class.line_of(key);
    class.push(line, severity, message);
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
    /// The items of its `jmesPath` list, in order.
    jmes_path: Vec<ItemLayout>,
}

/// Where one `jmesPath` item is: its first line and its keys' lines.
struct ItemLayout {
    line: u64,
    /// Key → file line.
    keys: Vec<(String, u64)>,
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

    /// The line of a `jmesPath` item's key, else of the item (a required key not written), else of
    /// `jmesPath:` (the list could not be read for its lines).
    fn item_line(&self, index: usize, item: &ListItem) -> Option<u64> {
        let written = self.entries.get(index)?.jmes_path.get(item.index);
        written
            .map(|i| {
                i.keys
                    .iter()
                    .find(|(k, _)| k == item.key)
                    .map_or(i.line, |(_, l)| *l)
            })
            .or_else(|| self.field_line(index, "jmesPath"))
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
            match &entry.value {
                serde_json::Value::String(body) => entry_layout(line, body),
                _ => EntryLayout {
                    line,
                    fields: Vec::new(),
                    jmes_path: Vec::new(),
                },
            }
        })
        .collect();
    ObjectsLayout { entries }
}

/// Where the fields of the entry whose body (`- |`) starts at file line `line` are: line `i` of the
/// body is file line `line + i`.
fn entry_layout(line: u64, body: &str) -> EntryLayout {
    let fields = body
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let (key, _) = l.split_once(':')?;
            let key = key.trim();
            (!key.is_empty() && !l.starts_with([' ', '\t', '#']))
                .then(|| (key.to_owned(), line + i as u64))
        })
        .collect();
    EntryLayout {
        line,
        fields,
        jmes_path: items_layout(line, body),
    }
}

/// An entry's body as far as the lines of its `jmesPath` items go.
#[derive(Deserialize)]
struct EntryText {
    #[serde(default, rename = "jmesPath")]
    jmes_path: Option<Vec<Spanned<ItemText>>>,
}

/// A `jmesPath` item: each key with its value's location.
type ItemText = BTreeMap<String, Spanned<serde_json::Value>>;

/// The `jmesPath` items of an entry's body. A list that is not one of mappings yields none: the
/// Mount's parse refuses it too, as a finding about the entry.
fn items_layout(line: u64, body: &str) -> Vec<ItemLayout> {
    let Ok(parsed) = serde_saphyr::from_str::<EntryText>(body) else {
        return Vec::new();
    };
    let lines: Vec<&str> = body.lines().collect();
    let in_file = |body_line: u64| line + body_line.saturating_sub(1);
    parsed
        .jmes_path
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let first = item.referenced.line();
            let keys = item
                .value
                .iter()
                .map(|(key, value)| {
                    let at = key_line(&lines, first, value.referenced.line(), key);
                    (key.clone(), in_file(at))
                })
                .collect();
            ItemLayout {
                line: in_file(first),
                keys,
            }
        })
        .collect()
}

/// The body line (1-based) of an item's `key`: its value's line, unless the value is a block
/// scalar, located at its first content line below the key; then the nearest line above it, down
/// to the item's first line, that writes the key.
fn key_line(lines: &[&str], first: u64, value: u64, key: &str) -> u64 {
    let writes_key = |n: u64| {
        let text = n
            .checked_sub(1)
            .and_then(|i| lines.get(usize::try_from(i).ok()?));
        text.is_some_and(|t| {
            [format!("{key}:"), format!("{key}\":"), format!("{key}':")]
                .iter()
                .any(|k| t.contains(k.as_str()))
        })
    };
    (first..=value)
        .rev()
        .find(|&n| writes_key(n))
        .unwrap_or(value)
}

/// `check`'s command line.
#[derive(clap::Args)]
#[command(
    about = "Validate SecretProviderClasses offline, with the Mount's own rules",
    long_about = "Validates every SecretProviderClass with provider azure in the files offline, with the \
                  Mount's own rules. Exit status: 0 no errors, 1 errors found or no SecretProviderClass \
                  with provider azure in the files, 2 usage."
)]
pub struct CheckArgs {
    /// How to print the findings.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The daemon's --cloud-name (the cloud of classes that set none).
    #[arg(long, value_name = "NAME", default_value = "AzurePublicCloud")]
    cloud_name: CloudName,
    /// The daemon's --write-cert-and-key-in-separate-files (split files may collide).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    write_cert_and_key_in_separate_files: bool,
    /// YAML files (any number of documents; - for standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
}

/// `--format`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// `FILE:LINE: CLASS: SEVERITY: MESSAGE` lines and a summary.
    Text,
    /// One JSON array of findings.
    Json,
}

/// Runs `check`.
pub fn main(args: CheckArgs) -> ExitCode {
    let options = CheckOptions {
        default_cloud: args.cloud_name,
        split_files: args.write_cert_and_key_in_separate_files,
    };
    let mut findings: Vec<Finding> = Vec::new();
    let mut survey = Survey::default();
    for file in &args.files {
        let text = match read(file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("check: {e}");
                return ExitCode::from(2);
            }
        };
        survey.add(file, &text);
        let mut found = check_text(file, &text, options);
        found.sort_by_key(|f| f.line);
        findings.extend(found);
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    match args.format {
        Format::Json => print_json(&findings),
        Format::Text => print_text(&findings, survey.classes, errors),
    }
    if survey.classes == 0 {
        // A CI gate must not pass on a typo that makes it check nothing.
        eprintln!("{}", survey.nothing_checked());
        return ExitCode::FAILURE;
    }
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("reading standard input: {e}"))?;
        return Ok(s);
    }
    std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))
}

fn print_json(findings: &[Finding]) {
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
}

fn print_text(findings: &[Finding], classes: usize, errors: usize) {
    let mut out = String::new();
    for f in findings {
        let (file, line, class, severity) = (&f.file, f.line, &f.class, f.severity.as_str());
        // A message may span lines (a YAML snippet): its later lines are indented under it.
        let message = f.message.replace('\n', "\n    ");
        let _ = writeln!(out, "{file}:{line}: {class}: {severity}: {message}");
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

/// What the files hold besides the classes checked: the documents skipped, and why.
#[derive(Default)]
pub(crate) struct Survey {
    classes: usize,
    files: Vec<String>,
    skipped: Vec<String>,
}

impl Survey {
    pub(crate) fn add(&mut self, file: &str, text: &str) {
        self.files.push(file.to_owned());
        for (line, doc) in documents(text) {
            let resource = match serde_saphyr::from_str::<Resource>(doc) {
                Ok(r) => r,
                Err(e) => {
                    let at = line + e.location().map_or(1, |l| l.line()) - 1;
                    let why = one_line(&e.to_string());
                    self.skipped
                        .push(format!("{file}:{at}: not valid YAML: {why}"));
                    continue;
                }
            };
            let items: Vec<&Resource> = match &resource.items {
                Some(items) => items.iter().map(|i| &i.value).collect(),
                None => vec![&resource],
            };
            for r in items {
                match skip_reason(r) {
                    None => self.classes += 1,
                    Some(why) => self.skipped.push(format!("{file}:{line}: {why}")),
                }
            }
        }
    }

    /// Why nothing was found: each skipped document, `FILE:LINE: why`.
    pub(crate) fn skipped(&self) -> &[String] {
        &self.skipped
    }

    fn nothing_checked(&self) -> String {
        let mut text = format!(
            "check: no SecretProviderClass with provider azure in {}; nothing was checked",
            self.files.join(", ")
        );
        if self.skipped.is_empty() {
            text.push_str(" (the input holds no YAML document)");
        }
        for why in &self.skipped {
            let _ = write!(text, "\n  skipped {why}");
        }
        text
    }
}

/// Why a document is not a class `check` checks (`None`: it is one), naming near misses.
fn skip_reason(r: &Resource) -> Option<String> {
    const KIND: &str = "SecretProviderClass";
    let kind = r.kind.as_deref().unwrap_or("");
    if kind != KIND {
        return Some(if near(kind, KIND) {
            format!("kind {kind:?} is not {KIND} (kinds are case-sensitive)")
        } else {
            format!("kind {kind:?}, not a {KIND}")
        });
    }
    let provider = r.spec.as_ref().and_then(|s| s.provider.as_deref());
    match provider.map(str::trim) {
        Some("azure") => None,
        Some(p) if near(p, "azure") => Some(format!(
            "provider {p:?} is not azure (provider names are case-sensitive)"
        )),
        Some(p) => Some(format!("provider {p:?}, not azure")),
        None => Some("a SecretProviderClass without spec.provider".to_owned()),
    }
}

/// `a` is `b` but for case or one or two typed characters.
fn near(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Levenshtein distance, two rows.
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()] <= 2
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

    /// GOOD with these object entries (each a block of `key: value` lines).
    fn with_objects(entries: &[&str]) -> String {
        let mut text = GOOD[..GOOD.find("        - |").unwrap()].to_owned();
        for entry in entries {
            text.push_str("        - |\n");
            for line in entry.lines() {
                text.push_str(&format!("          {line}\n"));
            }
        }
        text
    }

    /// The 1-based line of the `nth` line of `text` equal to `needle` once trimmed.
    fn line_of(text: &str, needle: &str, nth: usize) -> u64 {
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.trim() == needle)
            .nth(nth)
            .map(|(i, _)| i as u64 + 1)
            .unwrap_or_else(|| panic!("{needle:?} #{nth} not in {text}"))
    }

    /// Regression: validation skipped invalid entries, so findings about later entries named
    /// the wrong index and `check` put them at the wrong line (a collision between entries 1 and 2
    /// was reported as `objects.array[0] … and objects.array[1]`, `objectVersionHistory on a key` in
    /// entry 1 at entry 0's line). Every kind of object finding, after a broken entry 0.
    #[test]
    fn a_broken_entry_before_the_one_at_fault_never_moves_its_index_or_line() {
        const BROKEN: &str = "objectName: d\nobjectType: bogus";
        // (the faulty entry, what the finding says, the line it must be at: (text, nth))
        let cases: &[(&str, Severity, &str, (&str, usize))] = &[
            (
                "objectName: a\nobjectType: secret\nfilePermission: \"999\"",
                Severity::Error,
                "objects.array[1] (a): filePermission",
                ("filePermission: \"999\"", 0),
            ),
            (
                "objectName: a\nobjectType: nope",
                Severity::Error,
                "objects.array[1] (a): objectType",
                ("objectType: nope", 0),
            ),
            (
                "objectName: a\nobjectType: secret\nobjectVersion: ../x",
                Severity::Error,
                "objects.array[1] (a): objectVersion",
                ("objectVersion: ../x", 0),
            ),
            (
                "objectName: a\nobjectType: secret\nobjectVersionHistory: many",
                Severity::Error,
                "objects.array[1] (a): objectVersionHistory",
                ("objectVersionHistory: many", 0),
            ),
            (
                "objectName: a\nobjectType: key\nobjectFormat: pfx",
                Severity::Error,
                "objects.array[1] (a): objectFormat",
                ("objectFormat: pfx", 0),
            ),
            (
                "objectName: a\nobjectType: cert\nobjectEncoding: hex",
                Severity::Error,
                "objects.array[1] (a): objectEncoding",
                ("objectEncoding: hex", 0),
            ),
            (
                "objectName: a\nobjectType: secret\nobjectAlias: /abs",
                Severity::Error,
                "objects.array[1] (a): objectAlias",
                ("objectAlias: /abs", 0),
            ),
            (
                "objectName: a_b\nobjectType: secret",
                Severity::Error,
                "objects.array[1] (a_b): objectName",
                ("objectName: a_b", 0),
            ),
            (
                "objectName: k\nobjectType: key\nobjectVersionHistory: 2",
                Severity::Warning,
                "objects.array[1] (k): objectVersionHistory on a key",
                ("objectVersionHistory: 2", 0),
            ),
            (
                "objectName: a\nobjectType: secret\nobjectAlais: x",
                Severity::Warning,
                "objects.array[1]: objectAlais is not an object field",
                ("objectAlais: x", 0),
            ),
            // The fields this provider adds, each at its own line.
            (
                "objectName: a\nobjectType: secret\nkeyvaultName: x",
                Severity::Error,
                "objects.array[1] (a): keyvaultName",
                ("keyvaultName: x", 0),
            ),
            (
                "objectName: a\nobjectType: secret\noptional: maybe",
                Severity::Error,
                "objects.array[1] (a): optional",
                ("optional: maybe", 0),
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: a-b\n    objectAlias: x",
                Severity::Error,
                "objects.array[1] (a): jmesPath[0]: path",
                ("- path: a-b", 0),
            ),
            (
                "objectName: \"a-*\"\nobjectType: secret\nobjectAlias: dir",
                Severity::Error,
                "objects.array[1] (a-*): objectAlias",
                ("objectAlias: dir", 0),
            ),
            (
                "objectName: a\nobjectType: secret\nincludeManaged: \"true\"",
                Severity::Error,
                "objects.array[1] (a): includeManaged",
                ("includeManaged: \"true\"", 0),
            ),
            (
                "objectName: \"app1-*\"\nobjectType: key",
                Severity::Note,
                "objects.array[1] (app1-*): a pattern lists the vault's keys at every Mount; the identity \
                 needs the permission to list them: with Azure RBAC the data action \
                 Microsoft.KeyVault/vaults/keys/read",
                ("objectName: \"app1-*\"", 0),
            ),
            (
                "objectName: a\nobjectType: secret\nextractJSONKey: user",
                Severity::Warning,
                "extractJSONKey is not an object field and is ignored; this provider reads AWS's syntax",
                ("extractJSONKey: user", 0),
            ),
        ];
        for (entry, severity, says, (needle, nth)) in cases {
            let text = with_objects(&[BROKEN, entry]);
            let findings = check(&text);
            assert_eq!(
                at(&findings, *severity, says),
                line_of(&text, needle, *nth),
                "{says}: {findings:#?}"
            );
        }
        // Collisions, between entries 1 and 2: named by their own indices, at entry 2's alias.
        let text = with_objects(&[
            BROKEN,
            "objectName: a\nobjectType: secret\nobjectAlias: shared",
            "objectName: b\nobjectType: secret\nobjectAlias: shared",
        ]);
        let findings = check(&text);
        let line = at(
            &findings,
            Severity::Error,
            "objects.array[1] (a) and objects.array[2] (b) both write",
        );
        assert_eq!(line, line_of(&text, "objectAlias: shared", 1));
        let text = with_objects(&[
            BROKEN,
            "objectName: a\nobjectType: secret\nobjectAlias: api",
            "objectName: b\nobjectType: secret\nobjectAlias: api\nobjectVersionHistory: 2",
        ]);
        let findings = check(&text);
        let line = at(
            &findings,
            Severity::Error,
            "objects.array[1] (a) writes the file \"api\" but objects.array[2] (b)",
        );
        assert_eq!(line, line_of(&text, "objectAlias: api", 1));
    }

    /// Regression: a jmesPath item's finding was placed at the `jmesPath:` line of its entry, however
    /// far below it the item was. Now at the item's key the finding is about, else (a required key
    /// not written) at the item's first line; findings about the list as a whole stay at `jmesPath:`.
    #[test]
    fn a_jmespath_items_finding_was_placed_at_the_jmespath_line() {
        const FIRST: &str = "objectName: db\nobjectType: secret";
        // (the entry after FIRST, what the finding says, the line it must be at: (text, nth))
        let cases: &[(&str, &str, (&str, usize))] = &[
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: u\n  \
                 - path: a-b\n    objectAlias: x",
                "objects.array[1] (a): jmesPath[1]: path \"a-b\" is not a JMESPath expression",
                ("- path: a-b", 0),
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: u\n  \
                 - path: pass\n    filePermission: \"0600\"",
                "objects.array[1] (a): jmesPath[1]: objectAlias is required",
                ("- path: pass", 0),
            ),
            // The key at fault, not the item's first line.
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - objectAlias: u\n    path: a-b",
                "jmesPath[0]: path \"a-b\"",
                ("path: a-b", 0),
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: ../u",
                "jmesPath[0]: objectAlias \"../u\"",
                ("objectAlias: ../u", 0),
            ),
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: u\n    \
                 filePermission: \"999\"",
                "jmesPath[0]: filePermission \"999\"",
                ("filePermission: \"999\"", 0),
            ),
            // An item on the line after its dash, and a path as a block scalar (located at its
            // content, below the key).
            (
                "objectName: a\nobjectType: secret\njmesPath:\n  -\n    objectAlias: u\n    path: >-\n      \
                 a-b",
                "jmesPath[0]: path \"a-b\"",
                ("path: >-", 0),
            ),
            // Flow style: the item is on the line of `jmesPath:`.
            (
                "objectName: a\nobjectType: secret\njmesPath: [{path: u, objectAlias: u}, {path: a-b, \
                 objectAlias: x}]",
                "jmesPath[1]: path \"a-b\"",
                (
                    "jmesPath: [{path: u, objectAlias: u}, {path: a-b, objectAlias: x}]",
                    0,
                ),
            ),
            // The list as a whole.
            (
                "objectName: a\nobjectType: secret\njmesPath: []",
                "objects.array[1] (a): jmesPath is empty",
                ("jmesPath: []", 0),
            ),
            (
                "objectName: k\nobjectType: key\njmesPath:\n  - path: user\n    objectAlias: u",
                "objects.array[1] (k): jmesPath is only valid with objectType: secret",
                ("jmesPath:", 0),
            ),
            (
                "objectName: \"a-*\"\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: u",
                "objects.array[1] (a-*): jmesPath cannot be used with a pattern",
                ("jmesPath:", 0),
            ),
        ];
        for (entry, says, (needle, nth)) in cases {
            let text = with_objects(&[FIRST, entry]);
            let findings = check(&text);
            assert_eq!(
                at(&findings, Severity::Error, says),
                line_of(&text, needle, *nth),
                "{says}: {findings:#?}"
            );
        }
        // A collision with an item's file: at that item's objectAlias, whether the other file is
        // another object's or the same object's.
        let text = with_objects(&[
            "objectName: a\nobjectType: secret\nobjectAlias: shared",
            "objectName: b\nobjectType: secret\njmesPath:\n  - path: u\n    objectAlias: u\n  - path: p\n    \
             objectAlias: shared",
        ]);
        let line = at(
            &check(&text),
            Severity::Error,
            "objects.array[0] (a) and objects.array[1] (b) both write the file \"shared\"",
        );
        assert_eq!(line, line_of(&text, "objectAlias: shared", 1));
        let text = with_objects(&[
            FIRST,
            "objectName: b\nobjectType: secret\njmesPath:\n  - path: u\n    objectAlias: u\n  - path: p\n    \
             objectAlias: b",
        ]);
        let line = at(&check(&text), Severity::Error, "both write the file \"b\"");
        assert_eq!(line, line_of(&text, "objectAlias: b", 0));
    }

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
        assert_eq!(at(&findings, Severity::Warning, "write clientID"), 11);
        // keyvaultName is missing: reported at its near miss, once (regression: the near miss was
        // also warned about as an unknown parameter on the same line).
        assert_eq!(
            at(&findings, Severity::Error, "keyvaultName is required"),
            9
        );
        let on_line_9: Vec<_> = findings.iter().filter(|f| f.line == 9).collect();
        assert_eq!(on_line_9.len(), 1, "{on_line_9:?}");
        assert!(on_line_9[0].message.contains("write keyvaultName"));
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
        let mut survey = Survey::default();
        survey.add("spc.yaml", &stream);
        assert_eq!(survey.classes, 1);
        assert_eq!(survey.skipped.len(), 2, "{:?}", survey.skipped);
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            GOOD.lines().collect::<Vec<_>>().join("\n  ")
        );
        let findings = check(&list);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let mut survey = Survey::default();
        survey.add("spc.yaml", &list);
        assert_eq!(survey.classes, 1);
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
