//! Secret hygiene across the whole suite: every integration test's daemon logs at the most verbose
//! level, as JSON lines, into one buffer, and every secret the test bed hands out (secret values,
//! service-account tokens, client secrets, and the emulator's access tokens by their prefix) is
//! registered as forbidden. After each Mount the new log lines and the Mount's error message are
//! checked: a secret in either fails the test that made the Mount, naming the line.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;

/// What no log line or message may contain besides the registered secrets: the prefix of every
/// access token the emulator issues, and the start of every JWT (a service-account token).
const ALWAYS_FORBIDDEN: &[&str] = &["emulator-at.", "eyJ"];

#[derive(Default)]
struct State {
    logs: Vec<u8>,
    checked: usize,
    forbidden: BTreeSet<String>,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(Mutex::default)
}

#[derive(Clone)]
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        state()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logs
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Self::Writer {
        Sink
    }
}

/// Installs the capturing subscriber (once per test binary): `-v=5` and `--log-format-json`, as
/// the daemon would log.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(akv_csi_provider::logging::filter(5))
            .fmt_fields(JsonFields::new())
            .event_format(akv_csi_provider::logging::JsonLines)
            .with_writer(Sink)
            .finish();
        let _ = tracing::subscriber::set_global_default(Arc::new(subscriber));
    });
}

/// Registers a secret that must never be logged or echoed (short strings are skipped: they would
/// match ordinary words).
pub fn forbid(secret: &str) {
    if secret.len() >= 6 {
        state()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forbidden
            .insert(secret.to_owned());
    }
}

fn leak_in(text: &str, forbidden: &BTreeSet<String>) -> Option<String> {
    ALWAYS_FORBIDDEN
        .iter()
        .map(|s| s.to_string())
        .chain(forbidden.iter().cloned())
        .find(|s| text.contains(s.as_str()))
}

/// Fails if a log line written since the last check, or `message`, holds a forbidden string.
pub fn check(message: Option<&str>) {
    let mut state = state().lock().unwrap_or_else(|e| e.into_inner());
    let new = String::from_utf8_lossy(&state.logs[state.checked..]).into_owned();
    state.checked = state.logs.len();
    for line in new.lines() {
        if let Some(secret) = leak_in(line, &state.forbidden) {
            panic!(
                "a secret ({} bytes) appears in the log line: {line}",
                secret.len()
            );
        }
    }
    if let Some(message) = message
        && let Some(secret) = leak_in(message, &state.forbidden)
    {
        panic!(
            "a secret ({} bytes) appears in the error message: {message}",
            secret.len()
        );
    }
}

/// Every log line captured so far (for tests that look at the lines themselves).
pub fn lines() -> Vec<String> {
    let state = state().lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&state.logs)
        .lines()
        .map(str::to_owned)
        .collect()
}
