//! The root token creates apps. It comes from `HERALD_ROOT_TOKEN`, or is
//! generated on first start, printed once, and saved (mode 0600) in the data
//! directory so that later starts use the same one.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::secrets::{Secret, new_root_token};

pub const FILE: &str = "root-token";

/// The root token and whether it was generated just now (so the caller
/// prints it once).
pub fn load_or_create(
    configured: Option<&Secret<String>>,
    data_dir: &Path,
) -> std::io::Result<(Secret<String>, bool)> {
    if let Some(token) = configured {
        return Ok((token.clone(), false));
    }
    let path = data_dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(saved) if !saved.trim().is_empty() => {
            return Ok((Secret::new(saved.trim().to_owned()), false));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(data_dir)?;
    let token = new_root_token();
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok((Secret::new(token), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_private_permissions() {
        let dir = std::env::temp_dir().join(format!("herald-root-{}", uuid::Uuid::new_v4()));
        let (first, created) = load_or_create(None, &dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        let (second, created_again) = load_or_create(None, &dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created_again);
        assert_eq!(first.expose(), second.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(FILE)).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        let configured = Secret::new("hr_given".to_owned());
        let (given, created) =
            load_or_create(Some(&configured), &dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((given.expose().as_str(), created), ("hr_given", false));
        let _ = fs::remove_dir_all(dir);
    }
}
