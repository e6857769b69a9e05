//! Log output: klog's `-v` mapped onto levels, human-readable lines by default, and with
//! `--log-format-json` one JSON object per line with stable keys.
//!
//! JSON keys: `timestamp` (RFC 3339, UTC, microseconds), `level`, `target`, `message`, then the fields of every
//! span the event is in, outermost first (a Mount's `request_id`, `pod`, `spc`, `vault`, `mode`),
//! then the event's own fields. Span fields are flattened to the top level so that a log pipeline
//! can filter on `pod` or `vault` without knowing which span carried them; an event field with the
//! same name as a span field wins.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The filter for a klog verbosity: 0 info, 1-4 debug, 5 and above trace, for this crate only
/// (dependencies stay at info, so that `-v=5` does not print HTTP internals). `RUST_LOG` wins.
pub fn filter(verbosity: u32) -> tracing_subscriber::EnvFilter {
    let level = match verbosity {
        0 => "info",
        1..=4 => "debug",
        _ => "trace",
    };
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("info,akv_csi_provider={level}"))
    })
}

/// Installs the global subscriber writing to standard error. Colours only when standard error is
/// a terminal: escape codes in a file, a pipe or a container log are noise to whoever reads it.
pub fn init(json: bool, verbosity: u32) {
    use std::io::IsTerminal as _;
    init_with(
        json,
        verbosity,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
}

/// Installs the global subscriber writing to `writer`, with ANSI colours when `ansi`.
fn init_with<W>(json: bool, verbosity: u32, writer: W, ansi: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_ansi(ansi)
        .with_writer(writer);
    let result = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        let _ = writeln!(std::io::stderr(), "logging is already set up: {e}");
    }
}

/// One JSON object per event, span fields flattened (see the module docs).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut object = Map::new();
        object.insert("timestamp".into(), Value::String(timestamp()));
        object.insert(
            "level".into(),
            Value::String(event.metadata().level().as_str().to_owned()),
        );
        object.insert(
            "target".into(),
            Value::String(event.metadata().target().to_owned()),
        );
        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        object.insert(
            "message".into(),
            Value::String(fields.message.take().unwrap_or_default()),
        );
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(formatted) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                // With `JsonFields`, a span's recorded fields are a JSON object.
                if let Ok(Value::Object(span_fields)) =
                    serde_json::from_str::<Value>(formatted.as_str())
                {
                    object.extend(span_fields);
                }
            }
        }
        object.extend(fields.values);
        let line = serde_json::to_string(&Value::Object(object)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    values: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.values.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// Now in RFC 3339, UTC, as the text format writes it.
fn timestamp() -> String {
    use tracing_subscriber::fmt::time::FormatTime as _;
    let mut out = String::new();
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_flatten_span_fields() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .with_writer(buffer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("mount", pod = "app/web-0", vault = tracing::field::Empty);
            span.record("vault", "kv1");
            let _entered = span.enter();
            let inner = tracing::info_span!("fetch", object = "db");
            let _inner = inner.enter();
            tracing::warn!(status = 403u64, ok = false, "object failed");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "object failed");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["pod"], "app/web-0");
        assert_eq!(line["vault"], "kv1");
        assert_eq!(line["object"], "db");
        assert_eq!(line["status"], 403);
        assert_eq!(line["ok"], false);
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            timestamp.ends_with('Z') && timestamp.contains('T'),
            "{timestamp}"
        );
        // Regression: keys came out alphabetically (serde_json without `preserve_order`), not
        // in the documented order.
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "target",
                "message",
                "pod",
                "vault",
                "object",
                "status",
                "ok"
            ]
        );
    }
}
