//! What validation finds, as values: where (a parameter, an object's field or an item of its
//! `jmesPath` list, a part of the request), how serious, and the message. The Mount joins the
//! messages into its INVALID_ARGUMENT status; `check` places each finding in the file from its
//! location, never from its wording, so a message can be reworded without moving where it is
//! reported.

/// Where in the SecretProviderClass (or the request) a finding is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A parameter, by the key it is written under: `keyvaultName`, or the near miss found
    /// instead (`keyVaultName`), which is where the reader has to look.
    Parameter(String),
    /// The `objects` parameter as a whole.
    Objects,
    /// An entry of `objects.array` (its index in the array as written), and the field it is about.
    Object {
        /// Index in `objects.array`, counting every entry, valid or not.
        index: usize,
        /// The field; `None`: the entry as a whole.
        field: Option<&'static str>,
        /// An item of the field's list (`jmesPath[i]`); `None`: the field as a whole. `check`
        /// places an item's finding at the item, which may be many lines below the field's key.
        item: Option<ListItem>,
    },
    /// A part of the Mount request that is not a SecretProviderClass parameter (`secrets`,
    /// `permission`, the pod's attributes).
    Request(&'static str),
}

/// An item of a list-valued object field (`jmesPath`), and the key of the item a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListItem {
    /// Index in the list as written, counting every item, valid or not.
    pub index: usize,
    /// The item's key the finding is about (`path`, `objectAlias`, `filePermission`); when it is
    /// not written (a required key missing), `check` points at the item's first line.
    pub key: &'static str,
}

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
    /// The word `check` prints.
    pub fn as_str(self) -> &'static str {
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
    /// Where it is.
    pub location: Location,
    /// How serious.
    pub severity: Severity,
    /// What is wrong and how to fix it; it names its field and object, since the Mount's status
    /// shows the message without the location.
    pub message: String,
}

impl Finding {
    /// An error about a parameter (or the near miss written instead of it).
    pub fn parameter(key: &str, message: String) -> Self {
        Self::error(Location::Parameter(key.to_owned()), message)
    }

    /// An error about an object's field (`None`: the entry as a whole).
    pub fn object(index: usize, field: Option<&'static str>, message: String) -> Self {
        let item = None;
        Self::error(Location::Object { index, field, item }, message)
    }

    /// An error about an item of an object's list field: `jmesPath[item.index]` of entry `index`.
    pub fn object_item(index: usize, field: &'static str, item: ListItem, message: String) -> Self {
        let location = Location::Object {
            index,
            field: Some(field),
            item: Some(item),
        };
        Self::error(location, message)
    }

    /// An error about the `objects` parameter as a whole.
    pub fn objects(message: String) -> Self {
        Self::error(Location::Objects, message)
    }

    /// An error about a part of the request outside the SecretProviderClass.
    pub fn request(part: &'static str, message: String) -> Self {
        Self::error(Location::Request(part), message)
    }

    fn error(location: Location, message: String) -> Self {
        Self {
            location,
            severity: Severity::Error,
            message,
        }
    }
}

/// The messages of `findings`, joined for a status line.
pub fn messages(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}
