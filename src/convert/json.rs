//! Values from the fields of a JSON secret (`jmesPath`): the secret's value is parsed as JSON and
//! each JMESPath expression must give a string, written as UTF-8.
//!
//! Errors describe what was found (its JSON type, the position of a syntax error), never the
//! secret's content. The parsed document is not zeroized (neither `serde_json` nor `jmespath` can
//! be made to); it lives only while the object's files are made.

use zeroize::Zeroizing;

/// Why a JSON key could not be written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum JsonKeyError {
    /// The secret's value is not JSON.
    #[error(
        "the secret's value is not JSON ({kind} at line {line}, column {column}); jmesPath needs a \
         secret holding a JSON object"
    )]
    NotJson {
        /// The kind of syntax error (never the content).
        kind: &'static str,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// The expression gave something else than a string.
    #[error("jmesPath path {path:?} gives {found}, not a string; point it at a string field")]
    NotString {
        /// The expression.
        path: String,
        /// `null (no such field)`, `a number`, `an object`, …
        found: &'static str,
    },
    /// The expression does not compile or fails at run time (a function on the wrong type).
    #[error("jmesPath path {path:?} failed: {reason}")]
    Expression {
        /// The expression.
        path: String,
        /// The library's reason (about the expression and the types it met, not the values).
        reason: String,
    },
}

/// A parsed JSON secret, to evaluate several expressions against.
pub struct JsonSecret(jmespath::Rcvar);

impl JsonSecret {
    /// Parses the secret's value.
    pub fn parse(value: &str) -> Result<Self, JsonKeyError> {
        let doc: serde_json::Value =
            serde_json::from_str(value).map_err(|e| JsonKeyError::NotJson {
                kind: match e.classify() {
                    serde_json::error::Category::Eof => "it ends early",
                    _ => "a syntax error",
                },
                line: e.line(),
                column: e.column(),
            })?;
        let variable = jmespath::Variable::try_from(doc).map_err(|e| JsonKeyError::Expression {
            path: String::new(),
            reason: e.reason.to_string(),
        })?;
        Ok(Self(jmespath::Rcvar::new(variable)))
    }

    /// The string `path` gives, as UTF-8 bytes. `path` must be one validation accepted (its length
    /// is bounded there: the library recurses once per nesting level).
    pub fn extract(&self, path: &str) -> Result<Zeroizing<Vec<u8>>, JsonKeyError> {
        let failed = |e: jmespath::JmespathError| JsonKeyError::Expression {
            path: path.to_owned(),
            reason: e.reason.to_string(),
        };
        let expression = jmespath::compile(path).map_err(failed)?;
        let result = expression.search(&self.0).map_err(failed)?;
        match &*result {
            jmespath::Variable::String(s) => Ok(Zeroizing::new(s.as_bytes().to_vec())),
            other => Err(JsonKeyError::NotString {
                path: path.to_owned(),
                found: type_of(other),
            }),
        }
    }
}

fn type_of(v: &jmespath::Variable) -> &'static str {
    use jmespath::Variable as V;
    match v {
        V::Null => "null (no such field)",
        V::Bool(_) => "a boolean",
        V::Number(_) => "a number",
        V::String(_) => "a string",
        V::Array(_) => "an array",
        V::Object(_) => "an object",
        V::Expref(_) => "an expression",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"username":"app","connection-string":"Server=db;Password=hunter2",
        "port":5432,"nested":{"inner":"x"},"list":["a","b"]}"#;

    fn extract(path: &str) -> Result<String, JsonKeyError> {
        let doc = JsonSecret::parse(DOC)?;
        doc.extract(path)
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[test]
    fn strings_are_extracted_by_jmespath() {
        assert_eq!(extract("username").unwrap(), "app");
        assert_eq!(
            extract("\"connection-string\"").unwrap(),
            "Server=db;Password=hunter2"
        );
        assert_eq!(extract("nested.inner").unwrap(), "x");
        assert_eq!(extract("list[1]").unwrap(), "b");
    }

    #[test]
    fn other_results_name_their_type_never_the_content() {
        for (path, found) in [
            ("port", "a number"),
            ("nested", "an object"),
            ("list", "an array"),
            ("missing", "null (no such field)"),
        ] {
            let e = extract(path).unwrap_err().to_string();
            assert!(e.contains(found), "{path}: {e}");
            assert!(!e.contains("hunter2") && !e.contains("5432"), "{e}");
        }
    }

    #[test]
    fn a_value_that_is_not_json_is_described_by_position_only() {
        let Err(e) = JsonSecret::parse("Password=hunter2") else {
            panic!("parsed")
        };
        let e = e.to_string();
        assert!(e.contains("not JSON") && e.contains("line 1"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
