//! The driver's rules for one returned file path (its AtomicWriter validation), and the characters
//! no file name may carry. Checking them at validation turns a volume that would fail inside the
//! driver with a terse message into an error that names the object and the field.

/// A character that no file name should carry: one the kubelet cannot write, or one that makes a
/// name look like another (a path that only looks like `tls/cert.pem`). Returns the first one and
/// what it is. Ordinary Unicode (`pässwort`, `密码`) passes: Linux stores names as given.
pub fn suspicious_char(text: &str) -> Option<(char, &'static str)> {
    text.chars().find_map(|c| Some((c, describe_char(c)?)))
}

fn describe_char(c: char) -> Option<&'static str> {
    Some(match c {
        '\0' => "NUL, which no file name can hold",
        c if c.is_control() => "a control character",
        '\u{2024}' | '\u{2025}' | '\u{2026}' | '\u{FE52}' | '\u{FF0E}' => "a look-alike of '.'",
        '\u{2044}' | '\u{2215}' | '\u{2571}' | '\u{29F8}' | '\u{FF0F}' | '\u{1735}' => {
            "a look-alike of '/'"
        }
        '\u{2028}' | '\u{2029}' => "a line or paragraph separator",
        '\u{00A0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => "a space that looks like an ordinary one",
        // Unicode's format characters (category Cf): zero-width characters, bidirectional
        // controls (which display a name in another order than it is stored), invisible
        // operators and tags.
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}' => {
            "an invisible formatting character (zero-width or bidirectional control)"
        }
        _ => return None,
    })
}

/// `U+XXXX (what it is)`, for messages (the character itself may be invisible or misleading).
pub fn name_char((c, what): (char, &str)) -> String {
    format!("U+{:04X} ({what})", u32::from(c))
}

/// Checks a relative file path; the error says what is wrong.
pub fn check(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".to_owned());
    }
    if let Some(found) = suspicious_char(path) {
        return Err(format!(
            "contains {}; use letters, digits, '.', '-', '_' and '/'",
            name_char(found)
        ));
    }
    if path.len() > 4096 {
        return Err(format!("is {} bytes long; the limit is 4096", path.len()));
    }
    if path.starts_with('/') {
        return Err("is absolute; use a relative path such as tls/cert.pem".to_owned());
    }
    if path.starts_with("..") {
        return Err("starts with '..'".to_owned());
    }
    for element in path.split('/') {
        if element.len() > 255 {
            return Err(format!(
                "has a path element of {} bytes; the limit is 255",
                element.len()
            ));
        }
        if element == ".." {
            return Err("contains a '..' path element".to_owned());
        }
        if element.is_empty() {
            return Err("has an empty path element (a doubled or trailing '/')".to_owned());
        }
        if element == "." {
            return Err("contains a '.' path element".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: an alias with a NUL byte was accepted (the driver then failed to write the file
    /// with an error nobody could relate to the SecretProviderClass), and so were characters that
    /// only look like '.' or '/', invisible ones and bidirectional controls (Azure issue #1544).
    #[test]
    fn refuses_names_the_kubelet_cannot_write_or_that_only_look_safe() {
        for (bad, code) in [
            ("a\0b", "U+0000 (NUL"),
            ("tab\there", "U+0009 (a control"),
            ("del\u{7f}", "U+007F (a control"),
            ("c1\u{85}", "U+0085 (a control"),
            ("tls\u{FF0E}pem", "U+FF0E (a look-alike of '.')"),
            ("\u{2024}\u{2024}/etc", "U+2024 (a look-alike of '.')"),
            ("etc\u{2215}passwd", "U+2215 (a look-alike of '/')"),
            ("etc\u{2044}passwd", "U+2044 (a look-alike of '/')"),
            ("zero\u{200B}width", "U+200B (an invisible"),
            ("joiner\u{2060}", "U+2060 (an invisible"),
            ("bom\u{FEFF}", "U+FEFF (an invisible"),
            ("rtl\u{202E}gpj.exe", "U+202E (an invisible"),
            ("iso\u{2066}late", "U+2066 (an invisible"),
            ("nb\u{A0}sp", "U+00A0 (a space"),
            ("line\u{2028}sep", "U+2028 (a line"),
            ("tag\u{E0041}", "U+E0041 (an invisible"),
        ] {
            let err = check(bad).expect_err(bad);
            assert!(err.contains(code), "{bad:?}: {err}");
        }
    }

    #[test]
    fn ordinary_unicode_names_are_kept() {
        for ok in [
            "pässwort",
            "密码",
            "пароль/ключ.pem",
            "café.crt",
            "a b",
            "emoji-🔑",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(suspicious_char("密码"), None);
    }

    #[test]
    fn lengths_are_counted_in_bytes() {
        // 128 two-byte characters: 256 bytes in one element, over the 255-byte limit.
        let element = "ä".repeat(128);
        assert!(check(&element).unwrap_err().contains("256 bytes"));
        assert_eq!(check(&"ä".repeat(127)), Ok(()));
        let path = vec!["a".repeat(200); 21].join("/");
        assert!(check(&path).unwrap_err().contains("4220 bytes long"));
    }

    #[test]
    fn accepts_what_the_driver_accepts() {
        for ok in [
            "a",
            "tls.crt",
            "dir/sub/file",
            "tls..pem",
            "a..b/c",
            ".hidden",
            "x/.y",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_what_the_driver_rejects() {
        let long = "a".repeat(256);
        for bad in [
            "",
            "/abs",
            "../x",
            "..x",
            "a/../b",
            "a/..",
            "./a",
            "a/",
            "a//b",
            "a/./b",
            long.as_str(),
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check(&"a/".repeat(2100)).is_err());
    }
}
