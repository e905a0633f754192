//! Property values by reference: `env:NAME` and `file:PATH`, resolved when the source starts so
//! a manifest never holds a password. Errors name the variable or the file, never a value.

use std::path::Path;

/// Whether a value's reference is well formed (checked with the manifest).
pub(crate) fn check(value: &str) -> Result<(), String> {
    if let Some(name) = value.strip_prefix("env:")
        && name.trim().is_empty()
    {
        return Err("`env:` needs a variable name".into());
    }
    if let Some(path) = value.strip_prefix("file:")
        && path.trim().is_empty()
    {
        return Err("`file:` needs a path".into());
    }
    Ok(())
}

/// The value a property stands for: an environment variable's, a file's content (without its
/// final line break; relative paths start from `base_dir`), or the value itself.
pub(crate) fn resolve(value: &str, base_dir: &Path) -> Result<String, String> {
    check(value)?;
    if let Some(name) = value.strip_prefix("env:") {
        let name = name.trim();
        return std::env::var(name).map_err(|e| match e {
            std::env::VarError::NotPresent => format!("environment variable {name} is not set"),
            std::env::VarError::NotUnicode(_) => {
                format!("environment variable {name} is not UTF-8")
            }
        });
    }
    if let Some(path) = value.strip_prefix("file:") {
        let path = base_dir.join(path.trim());
        let mut text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        return Ok(text);
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_without_showing_values() {
        let dir =
            std::env::temp_dir().join(format!("onetruth-kafka-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("password"), "s3cret\r\n").unwrap();
        assert_eq!(resolve("file:password", &dir).unwrap(), "s3cret");
        assert_eq!(resolve("plain", &dir).unwrap(), "plain");
        // PATH is set in any test environment.
        assert_eq!(
            resolve("env:PATH", &dir).unwrap(),
            std::env::var("PATH").unwrap()
        );
        let e = resolve("env:ONETRUTH_TEST_SURELY_UNSET_VARIABLE", &dir).unwrap_err();
        assert_eq!(
            e,
            "environment variable ONETRUTH_TEST_SURELY_UNSET_VARIABLE is not set"
        );
        let e = resolve("file:missing", &dir).unwrap_err();
        assert!(e.starts_with("reading "), "{e}");
        assert!(e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
