//! The driver's rules for the paths of returned files (its AtomicWriter validation, spec 1.4).
//! Checking them here turns a volume that would fail inside the driver with a terse message into a
//! validation error that names the object.

/// Checks a relative file path; the error says what is wrong.
pub fn check(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".to_owned());
    }
    if path.len() > 4096 {
        return Err(format!(
            "is {} characters long; the limit is 4096",
            path.len()
        ));
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
                "has a path element of {} characters; the limit is 255",
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
    use super::check;

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
